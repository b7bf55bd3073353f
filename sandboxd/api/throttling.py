"""Admission by the alignment-confidence throttle (DESIGN.md §4 step 2), as a router dependency.

Trainer routers depend on :func:`admit`: in ``paused``/``halted``, or when the score is stale, it raises
:class:`~sandboxd.exceptions.Throttled` (503 ``throttled`` with ``Retry-After`` and the reason); in
``slow`` the request waits for a token of the band's bucket, at most ``rates.max_wait_seconds``.
"""

from __future__ import annotations

import asyncio

from fastapi import Depends
from fastapi.params import Depends as DependsParam

from .deps import ServiceDep


async def _admit(service: ServiceDep) -> None:
    wait = service.sentinel.admit()
    if wait > 0:
        await asyncio.sleep(wait)


def admit() -> DependsParam:
    """The dependency, for ``include_router(dependencies=[...])`` after the auth check."""
    dependency: DependsParam = Depends(_admit)
    return dependency
