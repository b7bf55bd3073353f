"""Alignment confidence, bands with hysteresis and band-dependent admission, on an injected clock."""

from __future__ import annotations

import pytest

from sandboxd.exceptions import Throttled
from sandboxd.watchdog.confidence import Inputs, Window, score
from sandboxd.watchdog.safety import Bands, Rates, ThrottleConfig, Weights
from sandboxd.watchdog.throttle import Band, Pending, RateGate, Throttle, band_for, candidate, step

BANDS = Bands()  # slow < 0.8, paused < 0.5, halted < 0.2
CONFIG = ThrottleConfig(
    min_samples=4, margin=0.05, dwell_seconds=30, rates=Rates(normal=None, slow=2.0, burst=2)
)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        pytest.param(Inputs(), 1.0, id="neutral"),
        pytest.param(Inputs(veto_rate=0.2), 0.9, id="veto-half-weight"),
        pytest.param(Inputs(violation_rate=0.3), 0.7, id="violations-full-weight"),
        pytest.param(Inputs(tripwire=1.0), 0.4, id="tripwire-alone-means-paused"),
        pytest.param(Inputs(drift=0.4), 0.8, id="drift"),
        pytest.param(Inputs(veto_rate=1.0, violation_rate=1.0, drift=1.0), 0.0, id="clamped-at-zero"),
    ],
)
def test_score_is_the_documented_weighted_mix(inputs: Inputs, expected: float) -> None:
    """score = 1 - min(1, 0.5*veto + 1.0*violation + 0.6*tripwire + 0.5*drift) with the default weights."""
    assert score(inputs, Weights()) == pytest.approx(expected)


def test_window_rates_need_min_samples_and_expire() -> None:
    """Rates count as 0 below min_samples, and observations leave the window after window_seconds."""
    window = Window(ThrottleConfig(min_samples=4, window_seconds=60))
    for _ in range(3):
        window.execute(0.0, violation=True)
    assert window.inputs(1.0).violation_rate == 0.0
    window.execute(1.0, violation=False)
    assert window.inputs(1.0).violation_rate == 0.75
    assert window.inputs(61.0).violation_rate == 0.0  # the first three expired
    window.tripwire(1.0)
    assert window.inputs(2.0).tripwire == 1.0
    window.acknowledge()
    assert window.inputs(2.0).tripwire == 0.0
    with pytest.raises(ValueError, match="drift"):
        window.observe_drift(1.5, 0.0)


@pytest.mark.parametrize(
    ("value", "band"),
    [
        (1.0, Band.NORMAL),
        (0.8, Band.NORMAL),
        (0.79, Band.SLOW),
        (0.5, Band.SLOW),
        (0.49, Band.PAUSED),
        (0.2, Band.PAUSED),
        (0.19, Band.HALTED),
        (0.0, Band.HALTED),
    ],
)
def test_band_for(value: float, band: Band) -> None:
    """Each score falls in exactly one band; thresholds belong to the better band."""
    assert band_for(value, BANDS) is band


@pytest.mark.parametrize(
    ("current", "value", "wanted"),
    [
        pytest.param(Band.NORMAL, 0.77, Band.NORMAL, id="inside-margin-stays"),
        pytest.param(Band.NORMAL, 0.74, Band.SLOW, id="past-margin-worsens"),
        pytest.param(Band.SLOW, 0.83, Band.SLOW, id="recovery-inside-margin-stays"),
        pytest.param(Band.SLOW, 0.86, Band.NORMAL, id="recovery-past-margin"),
        pytest.param(Band.NORMAL, 0.1, Band.HALTED, id="collapse-skips-bands"),
        pytest.param(Band.PAUSED, 1.0, Band.PAUSED, id="paused-never-lifts-itself"),
        pytest.param(Band.HALTED, 1.0, Band.HALTED, id="halted-never-lifts-itself"),
        pytest.param(Band.PAUSED, 0.1, Band.HALTED, id="paused-can-worsen"),
    ],
)
def test_candidate_band_uses_the_margin(current: Band, value: float, wanted: Band) -> None:
    """The score must pass a threshold by the margin; nothing leaves paused or halted by itself."""
    assert candidate(current, value, BANDS, 0.05) is wanted


def test_hysteresis_needs_the_dwell_time() -> None:
    """A band changes only after its candidate has held for dwell_seconds; a blip resets the wait."""
    band, pending = step(Band.NORMAL, None, 0.6, 0.0, CONFIG)
    assert (band, pending) == (Band.NORMAL, Pending(Band.SLOW, 0.0))
    band, pending = step(band, pending, 0.6, 29.0, CONFIG)
    assert band is Band.NORMAL
    band, pending = step(band, pending, 0.95, 29.5, CONFIG)  # recovered for a moment
    assert (band, pending) == (Band.NORMAL, None)
    band, pending = step(band, pending, 0.6, 30.0, CONFIG)
    band, pending = step(band, pending, 0.6, 59.0, CONFIG)
    assert band is Band.NORMAL
    band, pending = step(band, pending, 0.6, 60.0, CONFIG)
    assert (band, pending) == (Band.SLOW, None)


def test_rate_gate_reserves_and_refuses_for_free() -> None:
    """Burst tokens go at once, later requests wait 1/rate each, and a refusal spends nothing."""
    gate = RateGate(rate=2.0, burst=2)
    assert gate.reserve(0.0, 5.0) == 0.0
    assert gate.reserve(0.0, 5.0) == 0.0
    assert gate.reserve(0.0, 5.0) == pytest.approx(0.5)
    assert gate.reserve(0.0, 5.0) == pytest.approx(1.0)
    assert gate.reserve(0.0, 0.9) is None  # would wait 1.5 s
    assert gate.reserve(0.0, 5.0) == pytest.approx(1.5)  # the refusal did not take a token
    assert gate.reserve(10.0, 0.0) == 0.0  # refilled


def _throttle(**changes: object) -> tuple[Throttle, Clock]:
    clock = Clock()
    return Throttle(CONFIG.model_copy(update=changes), clock), clock


def test_tripwire_pauses_at_once_and_only_resume_lifts_it() -> None:
    """trip() moves straight to paused; evaluations never lift it; resume() does and is recorded."""
    throttle, clock = _throttle()
    change = throttle.trip("tripwire honeytoken.env (leaked)")
    assert change is not None
    assert (change.old, change.new, change.by) == (Band.NORMAL, Band.PAUSED, "tripwire")
    with pytest.raises(Throttled, match="paused") as refused:
        throttle.admit()
    assert refused.value.retry_after_seconds == CONFIG.paused_retry_after_seconds
    for _ in range(100):  # time passes; the tripwire leaves the window; the score recovers to 1
        clock.now += 5
        assert throttle.evaluate() is None
    assert throttle.band is Band.PAUSED
    assert throttle.score == 1.0
    resumed = throttle.resume("checked the transcript; false alarm", "token:abc")
    assert resumed is not None
    assert (resumed.new, resumed.by) == (Band.NORMAL, "token:abc")
    assert throttle.admit() == 0.0
    assert [c.new for c in throttle.history] == [Band.PAUSED, Band.NORMAL]


def test_halted_stays_halted_on_a_tripwire() -> None:
    """A tripwire does not move halted up to paused."""
    throttle, _ = _throttle()
    throttle.band = Band.HALTED
    assert throttle.trip("tripwire x") is None
    assert throttle.band is Band.HALTED


def test_violations_slow_then_pause_with_dwell() -> None:
    """A sustained violation rate moves normal → slow → paused, each after the dwell time."""
    throttle, clock = _throttle()
    for _ in range(10):
        throttle.window.execute(clock.now, violation=True)
    for _ in range(10):
        throttle.window.execute(clock.now, violation=False)
    throttle.evaluate()  # score 0.5 → candidate slow (0.55 >= 0.5 → paused needs < 0.45)
    assert throttle.band.value == "normal"
    assert throttle.score == pytest.approx(0.5)
    clock.now += 30
    assert throttle.evaluate() is not None
    assert throttle.band is Band.SLOW
    for _ in range(20):
        throttle.window.execute(clock.now, violation=True)  # 30/40 = 0.75 → score 0.25
    throttle.evaluate()
    clock.now += 30
    change = throttle.evaluate()
    assert change is not None
    assert change.new is Band.PAUSED
    assert "sandbox-violation rate" in change.reason


def test_slow_band_waits_then_refuses() -> None:
    """In slow, requests wait for a token up to max_wait_seconds and then get Throttled."""
    throttle, _ = _throttle(rates=Rates(normal=None, slow=1.0, burst=1, max_wait_seconds=2.0))
    throttle._move(Band.SLOW, "test", "score")
    assert throttle.admit() == 0.0
    assert throttle.admit() == pytest.approx(1.0)
    assert throttle.admit() == pytest.approx(2.0)
    with pytest.raises(Throttled, match="over the admission rate"):
        throttle.admit()


@pytest.mark.parametrize(
    ("changes", "advance", "message"),
    [
        pytest.param({}, 11.0, "stale: last evaluated", id="no-evaluation"),
        pytest.param({"drift_stale_after_seconds": 5.0}, 0.0, "no drift input", id="drift-feed-missing"),
    ],
)
def test_stale_score_fails_closed(changes: dict[str, object], advance: float, message: str) -> None:
    """No evaluation within stale_after_seconds (or no required drift input) refuses every request."""
    throttle, clock = _throttle(**changes)
    clock.now += advance
    with pytest.raises(Throttled, match=message):
        throttle.admit()


def test_fresh_drift_input_admits() -> None:
    """With a drift feed required, a recent observe_drift keeps admission open."""
    throttle, clock = _throttle(drift_stale_after_seconds=5.0)
    throttle.window.observe_drift(0.0, clock.now)
    assert throttle.admit() == 0.0
    clock.now += 6
    throttle.evaluate()
    with pytest.raises(Throttled):
        throttle.admit()


def test_config_rejects_unordered_bands() -> None:
    """Band thresholds must be ordered halt < pause < slow."""
    with pytest.raises(ValueError, match="halt_below < pause_below"):
        Bands(slow_below=0.5, pause_below=0.6, halt_below=0.2)
