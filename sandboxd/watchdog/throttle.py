"""The throttle: bands with hysteresis, driven by alignment confidence, and band-dependent admission.

Pure decisions (``band_for``, ``candidate``, ``step``, ``RateGate.reserve``) take the clock as an
argument; :class:`Throttle` only applies them. It never leaves ``paused`` or ``halted`` by itself:
only :meth:`Throttle.resume` (``POST /v1/admin/resume``) does.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandboxd.exceptions import Throttled

from .confidence import Inputs, Window, reasons, score
from .safety import Bands, ThrottleConfig


class Band(enum.StrEnum):
    """How much work the loop may do."""

    NORMAL = "normal"  # admit at the normal rate
    SLOW = "slow"  # admit at the slow rate; requests wait briefly for a token
    PAUSED = "paused"  # refuse trainer requests (503) until an admin resumes
    HALTED = "halted"  # as paused, reached because confidence collapsed; also needs a resume

    @property
    def level(self) -> int:
        return _LEVELS[self]


_LEVELS = {Band.NORMAL: 0, Band.SLOW: 1, Band.PAUSED: 2, Band.HALTED: 3}
STOPPED = frozenset({Band.PAUSED, Band.HALTED})


def band_for(value: float, bands: Bands) -> Band:
    """The band a score falls in, without hysteresis."""
    if value < bands.halt_below:
        return Band.HALTED
    if value < bands.pause_below:
        return Band.PAUSED
    if value < bands.slow_below:
        return Band.SLOW
    return Band.NORMAL


def candidate(current: Band, value: float, bands: Bands, margin: float) -> Band:
    """The band the score argues for: past a threshold by ``margin``; never out of paused/halted."""
    worse = band_for(value + margin, bands)
    if worse.level > current.level:
        return worse
    better = band_for(value - margin, bands)
    if better.level < current.level and current not in STOPPED:
        return better
    return current


@dataclass(frozen=True)
class Pending:
    band: Band
    since: float


def step(
    current: Band, pending: Pending | None, value: float, now: float, config: ThrottleConfig
) -> tuple[Band, Pending | None]:
    """One hysteresis step: move only after the candidate band has held for ``dwell_seconds``."""
    wanted = candidate(current, value, config.bands, config.margin)
    if wanted == current:
        return current, None
    if pending is None or pending.band != wanted:
        pending = Pending(wanted, now)
    if now - pending.since >= config.dwell_seconds:
        return wanted, None
    return current, pending


@dataclass
class RateGate:
    """A token bucket that hands out reservations: the wait is returned, and a refusal costs nothing."""

    rate: float
    burst: int
    tokens: float = field(init=False)
    stamp: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def reserve(self, now: float, max_wait: float) -> float | None:
        """Seconds to wait before going ahead, or None if that would exceed ``max_wait``."""
        if self.stamp is not None:
            self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        wait = 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate
        if wait > max_wait:
            return None
        self.tokens -= 1.0
        return wait


@dataclass(frozen=True)
class Change:
    """One band change, as recorded in the ledger and shown in the state."""

    old: Band
    new: Band
    score: float
    reason: str
    by: str  # "score", "tripwire", "admin:<token id>"
    time: str

    def body(self) -> dict[str, Any]:
        return {
            "from": self.old.value,
            "to": self.new.value,
            "score": round(self.score, 6),
            "reason": self.reason,
            "by": self.by,
            "time": self.time,
        }


def _wall() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Throttle:
    """The band, the score and the admission gate of one daemon."""

    def __init__(self, config: ThrottleConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.window = Window(config)
        self.band = Band.NORMAL
        self.pending: Pending | None = None
        self.inputs = Inputs()
        self.score = 1.0
        self.evaluated_at = clock()
        self.reason = "starting"
        self.history: deque[Change] = deque(maxlen=config.history)
        self._gate = self._new_gate()

    def _new_gate(self) -> RateGate | None:
        rates = self.config.rates
        rate = rates.normal if self.band is Band.NORMAL else rates.slow
        return None if rate is None else RateGate(rate, rates.burst)

    def _move(self, new: Band, reason: str, by: str) -> Change | None:
        if new == self.band:
            return None
        change = Change(self.band, new, self.score, reason, by, _wall())
        self.band, self.pending, self.reason = new, None, reason
        self.history.append(change)
        self._gate = self._new_gate()
        return change

    def evaluate(self, now: float | None = None) -> Change | None:
        """Recompute the score from the window and apply one hysteresis step."""
        now = self.clock() if now is None else now
        self.inputs = self.window.inputs(now)
        self.score = score(self.inputs, self.config.weights)
        self.evaluated_at = now
        band, self.pending = step(self.band, self.pending, self.score, now, self.config)
        why = "; ".join(reasons(self.inputs, self.config.weights)) or "confidence recovered"
        return self._move(band, f"score {self.score:.2f}: {why}", "score")

    def trip(self, reason: str, now: float | None = None) -> Change | None:
        """A tripwire fired: straight to paused (halted stays halted)."""
        self.window.tripwire(self.clock() if now is None else now)
        if self.band is Band.HALTED:
            return None
        return self._move(Band.PAUSED, reason, "tripwire")

    def hold(self, band: Band, reason: str, by: str) -> Change | None:
        """Stop at ``band`` (paused or halted) for a reason from elsewhere (the latch); the window is untouched."""
        if self.band in STOPPED or band not in STOPPED:
            return None
        return self._move(band, reason, by)

    def resume(self, reason: str, by: str, now: float | None = None) -> Change | None:
        """An admin lifts paused/halted: tripwires so far are acknowledged, the score decides the band."""
        now = self.clock() if now is None else now
        self.window.acknowledge()
        self.inputs = self.window.inputs(now)
        self.score = score(self.inputs, self.config.weights)
        self.evaluated_at = now
        target = Band.SLOW if band_for(self.score, self.config.bands) is not Band.NORMAL else Band.NORMAL
        return self._move(target, reason, by)

    def stale(self, now: float) -> str | None:
        """Why the score cannot be trusted now, or None."""
        age = now - self.evaluated_at
        if age > self.config.stale_after_seconds:
            return f"alignment confidence is stale: last evaluated {age:.0f}s ago"
        limit = self.config.drift_stale_after_seconds
        drift_at = self.window.drift_at
        if limit is not None and (drift_at is None or now - drift_at > limit):
            return "alignment confidence is stale: no drift input within drift_stale_after_seconds"
        return None

    def admit(self, now: float | None = None) -> float:
        """Seconds the request must wait before it runs; raise :class:`Throttled` to refuse it."""
        now = self.clock() if now is None else now
        stale = self.stale(now)
        if stale is not None:
            raise Throttled(f"{stale}; failing closed", self.config.evaluate_interval_seconds * 2)
        if self.band in STOPPED:
            raise Throttled(
                f"throttle is {self.band.value}: {self.reason}; an admin must POST /v1/admin/resume",
                self.config.paused_retry_after_seconds,
            )
        if self._gate is None:
            return 0.0
        wait = self._gate.reserve(now, self.config.rates.max_wait_seconds)
        if wait is None:
            raise Throttled(
                f"throttle is {self.band.value}: {self.reason}; over the admission rate",
                self.config.rates.max_wait_seconds,
            )
        return wait
