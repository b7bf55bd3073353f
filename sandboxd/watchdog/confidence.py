"""Alignment confidence: a score in [0, 1] over a rolling window of observations (docs/safety.md).

``score = 1 - min(1, w_veto * veto_rate + w_violation * violation_rate + w_tripwire * tripwire + w_drift * drift
+ w_flags * flag_rate)``

* ``veto_rate``: vetoed / screened programs in the window (0 below ``min_samples`` screened);
* ``violation_rate``: ``sandbox_violation`` runs / executed runs (0 below ``min_samples`` runs);
* ``tripwire``: 1 while a tripwire event not yet acknowledged by a resume is in the window, else 0;
* ``drift``: the last value given to ``observe_drift`` in [0, 1]; 0 (neutral) by default;
* ``flag_rate``: flagged / all human review labels in the window (docs/reviews.md); no minimum sample,
  since every label is a deliberate human judgement. 0 without labels.

Everything here is pure or a plain container of timestamps; the clock is always passed in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .safety import ThrottleConfig, Weights

_MAX_SAMPLES = 100_000  # per deque; a burst beyond this only forgets the oldest samples early


@dataclass(frozen=True)
class Inputs:
    """The badness inputs, each in [0, 1]."""

    veto_rate: float = 0.0
    violation_rate: float = 0.0
    tripwire: float = 0.0
    drift: float = 0.0
    flag_rate: float = 0.0


def score(inputs: Inputs, weights: Weights) -> float:
    """The documented weighted mix; 1.0 is full confidence."""
    penalty = (
        weights.veto_rate * inputs.veto_rate
        + weights.violation_rate * inputs.violation_rate
        + weights.tripwires * inputs.tripwire
        + weights.drift * inputs.drift
        + weights.flags * inputs.flag_rate
    )
    return max(0.0, 1.0 - min(1.0, penalty))


def reasons(inputs: Inputs, weights: Weights) -> list[str]:
    """What lowers the score, largest contribution first, for people reading the state."""
    parts = [
        (weights.veto_rate * inputs.veto_rate, f"veto rate {inputs.veto_rate:.0%}"),
        (
            weights.violation_rate * inputs.violation_rate,
            f"sandbox-violation rate {inputs.violation_rate:.0%}",
        ),
        (weights.tripwires * inputs.tripwire, "tripwire event in the window"),
        (weights.drift * inputs.drift, f"drift {inputs.drift:.2f}"),
        (weights.flags * inputs.flag_rate, f"human flag rate {inputs.flag_rate:.0%}"),
    ]
    return [text for weight, text in sorted(parts, key=lambda p: -p[0]) if weight > 0]


def _rate(hits: deque[float], total: deque[float], min_samples: int) -> float:
    return min(1.0, len(hits) / len(total)) if len(total) >= min_samples else 0.0


@dataclass
class Window:
    """Timestamps of what was observed; ``inputs(now)`` drops what fell out of the window."""

    config: ThrottleConfig
    screened: deque[float] = field(default_factory=lambda: deque(maxlen=_MAX_SAMPLES))
    vetoed: deque[float] = field(default_factory=lambda: deque(maxlen=_MAX_SAMPLES))
    executed: deque[float] = field(default_factory=lambda: deque(maxlen=_MAX_SAMPLES))
    violations: deque[float] = field(default_factory=lambda: deque(maxlen=_MAX_SAMPLES))
    tripwires: deque[float] = field(default_factory=lambda: deque(maxlen=_MAX_SAMPLES))
    drift: float = 0.0
    drift_at: float | None = None
    labelled: deque[float] = field(default_factory=lambda: deque(maxlen=_MAX_SAMPLES))
    flagged: deque[float] = field(default_factory=lambda: deque(maxlen=_MAX_SAMPLES))

    def screen(self, now: float, *, vetoed: bool) -> None:
        self.screened.append(now)
        if vetoed:
            self.vetoed.append(now)

    def execute(self, now: float, *, violation: bool) -> None:
        self.executed.append(now)
        if violation:
            self.violations.append(now)

    def label(self, now: float, *, flagged: bool) -> None:
        """A human review label (docs/reviews.md); flags lower the score."""
        self.labelled.append(now)
        if flagged:
            self.flagged.append(now)

    def tripwire(self, now: float) -> None:
        self.tripwires.append(now)

    def acknowledge(self) -> None:
        """A resume acknowledges every tripwire event so far."""
        self.tripwires.clear()

    def observe_drift(self, value: float, now: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"drift must be in [0, 1], got {value!r}")
        self.drift, self.drift_at = value, now

    def inputs(self, now: float) -> Inputs:
        horizon = now - self.config.window_seconds
        for samples in (
            self.screened,
            self.vetoed,
            self.executed,
            self.violations,
            self.tripwires,
            self.labelled,
            self.flagged,
        ):
            while samples and samples[0] < horizon:
                samples.popleft()
        least = self.config.min_samples
        return Inputs(
            veto_rate=_rate(self.vetoed, self.screened, least),
            violation_rate=_rate(self.violations, self.executed, least),
            tripwire=1.0 if self.tripwires else 0.0,
            drift=self.drift,
            flag_rate=_rate(self.flagged, self.labelled, 1),
        )

    def counts(self) -> dict[str, int]:
        return {
            "screened": len(self.screened),
            "vetoed": len(self.vetoed),
            "executed": len(self.executed),
            "violations": len(self.violations),
            "tripwires": len(self.tripwires),
            "labelled": len(self.labelled),
            "flagged": len(self.flagged),
        }
