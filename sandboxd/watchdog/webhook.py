"""The tripwire webhook: each event is POSTed as JSON, in the background, with a few retries.

Delivery never blocks or fails a request: failures are logged. ``flush`` waits for pending posts
(shutdown, tests).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import httpx

log = logging.getLogger(__name__)
_ATTEMPTS = 3
_TIMEOUT_SECONDS = 5.0


class Webhook:
    def __init__(self, url: str | None, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url
        self._transport = transport
        self._pending: set[asyncio.Task[None]] = set()
        self.delivered = 0
        self.failed = 0

    def send(self, event: Mapping[str, Any]) -> None:
        """Queue one POST (no-op without a URL)."""
        if self.url is None:
            return
        task = asyncio.get_running_loop().create_task(self._post(dict(event)))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _post(self, event: dict[str, Any]) -> None:
        assert self.url is not None
        async with httpx.AsyncClient(timeout=_TIMEOUT_SECONDS, transport=self._transport) as client:
            for attempt in range(1, _ATTEMPTS + 1):
                try:
                    response = await client.post(self.url, json=event)
                    if response.status_code < 300:
                        self.delivered += 1
                        return
                    problem = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                log.warning("tripwire webhook attempt %d/%d failed: %s", attempt, _ATTEMPTS, problem)
                await asyncio.sleep(0.5 * attempt)
        self.failed += 1
        log.error("tripwire webhook gave up on event %s", event.get("rule"))

    async def flush(self, timeout: float = 10.0) -> None:
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=timeout)
