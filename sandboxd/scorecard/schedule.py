"""Periodic scorecards: a small asyncio task the service's lifespan can start and stop.

Wiring (in the app's lifespan, once the ledger is open)::

    scheduler = ScorecardScheduler.from_settings(settings, on_drift=sentinel.observe_drift)  # None if off
    if scheduler is not None:
        scheduler.start()
    ...
    if scheduler is not None:
        await scheduler.stop()

Each run opens its own store connection (``open_store(url)``), so it never shares a connection with the
request path, builds the scorecard in a worker thread, writes it with ``archive.write`` and prunes the
oldest files beyond ``keep``. After each run, ``on_drift`` (if given) gets the drift score on the event
loop: this is how the curriculum drift reaches the throttle's confidence score. A failed run is logged and retried at the next interval; it never stops the
service. Without the service, a cron job or systemd timer running ``sandboxd scorecard`` does the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .windows import DEFAULT_BASELINE, DEFAULT_WINDOW

if TYPE_CHECKING:
    from sandboxd.ledger.store import LedgerStore
    from sandboxd.settings import Settings

    from .archive import Written

log = logging.getLogger(__name__)


class ScorecardScheduler:
    """Write a scorecard every ``interval_seconds`` into ``out_dir``, keeping the newest ``keep``."""

    def __init__(
        self,
        open_store: Callable[[], LedgerStore],
        out_dir: Path,
        interval_seconds: float,
        *,
        source: str = "",
        window: str = DEFAULT_WINDOW,
        baseline: str = DEFAULT_BASELINE,
        keep: int = 100,
        on_drift: Callable[[float], None] | None = None,
    ) -> None:
        if interval_seconds <= 0 or keep < 1:
            raise ValueError("interval_seconds must be positive and keep at least 1")
        self._open = open_store
        self.out_dir = out_dir
        self.interval_seconds = interval_seconds
        self.source = source
        self.window = window
        self.baseline = baseline
        self.keep = keep
        self.on_drift = on_drift
        self.last_drift: float | None = None  # the drift score of the latest scorecard
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, *, on_drift: Callable[[float], None] | None = None
    ) -> ScorecardScheduler | None:
        """The scheduler the settings ask for, or ``None`` when periodic scorecards are off."""
        from sandboxd.ledger.stores import open_store, redact  # noqa: PLC0415 - only when scorecards are on

        if settings.scorecard_interval_seconds is None:
            return None
        url = settings.ledger_url or str(settings.data_dir / "ledger.db")
        return cls(
            lambda: open_store(url, origin=settings.ledger_origin),
            settings.scorecard_dir or settings.data_dir / "scorecards",
            settings.scorecard_interval_seconds,
            source=redact(url),
            window=settings.scorecard_window,
            baseline=settings.scorecard_baseline_window,
            keep=settings.scorecard_keep,
            on_drift=on_drift,
        )

    def run_once(self) -> Written:
        """Build and write one scorecard now (blocking), then prune old ones."""
        from . import archive  # noqa: PLC0415 - the analysis stack loads on the first run, not at startup
        from .report import build_scorecard  # noqa: PLC0415 - as above

        store = self._open()
        try:
            card = build_scorecard(store, window=self.window, baseline=self.baseline, source=self.source)
        finally:
            store.close()
        written = archive.write(card, self.out_dir)
        self.last_drift = float(card["drift"]["score"])
        for old in archive.listing(self.out_dir)[: -self.keep]:
            for suffix in (".json", ".html"):
                (self.out_dir / f"{old}{suffix}").unlink(missing_ok=True)
        log.info("scorecard written: %s (drift %.3f)", written.json_path, card["drift"]["score"])
        return written

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            try:
                await asyncio.to_thread(self.run_once)
            except Exception:
                log.exception("periodic scorecard failed; retrying in %.0f s", self.interval_seconds)
                continue
            if self.on_drift is not None and self.last_drift is not None:
                self.on_drift(self.last_drift)

    def start(self) -> None:
        """Start the background task (the first scorecard comes after one interval)."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="scorecards")

    async def stop(self) -> None:
        """Cancel the background task and wait for it."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
