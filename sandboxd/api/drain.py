"""Graceful shutdown: on SIGTERM stop admitting, drain in-flight runs within a grace period, then exit.

Installed by the app's lifespan in the main thread (a server run in a thread, as in
``sandboxd.testing``, keeps the server's own handling). It wraps whatever handler was there, which
under ``sandboxd serve`` is uvicorn's, so it works the same with one worker or several:

1. first SIGTERM or SIGINT: new work gets ``503 shutting_down`` and ``/readyz`` turns 503, while the
   requests already admitted run to completion;
2. after ``shutdown_grace_seconds``, if some are still running, the pools are closed: their runs end
   with ``503 shutting_down`` at once instead of being cut off without an answer;
3. the previous handler gets the signal: uvicorn closes its listeners and runs the lifespan shutdown,
   which removes every container of this instance.

A second signal skips the wait and hands over at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from types import FrameType
from typing import Any

from sandboxd.service import Service

from .admission import Admission

log = logging.getLogger(__name__)
SIGNALS = (signal.SIGTERM, signal.SIGINT)
_AFTER_CLOSE_SECONDS = 10.0  # requests answer soon after their pools close; never wait longer


class Drain:
    def __init__(self, admission: Admission, service: Service, grace_seconds: float) -> None:
        self.admission = admission
        self.service = service
        self.grace_seconds = grace_seconds
        self.signalled = False
        self._previous: dict[int, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def install(self) -> bool:
        """Take over SIGTERM and SIGINT; False (and nothing done) outside the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return False
        self._loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return True

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            if signal.getsignal(sig) == self._on_signal:
                signal.signal(sig, previous)
        self._previous.clear()

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if self.signalled or self._loop is None:
            self._hand_over(sig)
            return
        self.signalled = True
        self._loop.call_soon_threadsafe(self._start, sig)

    def _start(self, sig: int) -> None:
        assert self._loop is not None
        self._task = self._loop.create_task(self.drain(sig))

    async def drain(self, sig: int) -> None:
        """Stop admitting, wait for in-flight requests (then close the pools), hand the signal over."""
        self.admission.draining = True
        self.service.draining = True
        log.warning(
            "signal %d: draining %d in-flight requests for up to %gs",
            sig,
            self.admission.inflight,
            self.grace_seconds,
        )
        if not await self.admission.wait_idle(self.grace_seconds):
            log.warning("grace period over: closing the pools under %d requests", self.admission.inflight)
            await self.service.close_pools()
            await self.admission.wait_idle(_AFTER_CLOSE_SECONDS)
        log.info("drained; shutting down")
        self._hand_over(sig)

    def _hand_over(self, sig: int) -> None:
        self.uninstall()
        signal.raise_signal(sig)
