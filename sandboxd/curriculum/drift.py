"""Drift of the curriculum between a baseline window and the current window, as one score in [0, 1].

Two tests, each turned into a component in [0, 1] that stays 0 unless the change is larger than sampling
noise could explain:

- **Family shares.** The Jensen-Shannon distance (the square root of the base-2 divergence, a metric in
  [0, 1]) between the two windows' family share distributions (the noise bucket is a family too). Its
  noise floor is the 95th percentile of the distance over ``PERMUTATIONS`` random relabelings of the
  pooled items into windows of the same sizes (a permutation test). The component is
  ``max(0, (JS - floor) / (1 - floor))``.
- **Complexity.** For each metric in ``features.METRICS``, the two-sample Kolmogorov-Smirnov statistic D
  (in [0, 1]) against its critical value at ``KS_ALPHA``, ``c(alpha) * sqrt((n + m) / (n * m))``. The
  component is the largest ``max(0, (D - critical) / (1 - critical))``.

The score is the larger of the two components; ``flagged`` is ``score >= FLAG``. With fewer than
``MIN_ITEMS`` items in either window the score is 0 and ``reason`` says why (too little data is not
evidence of drift; the scorecard shows the volumes). ``drift_score`` is what the watchdog throttle's
``observe_drift(score)`` consumes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

PERMUTATIONS = 64
NULL_QUANTILE = 0.95
KS_ALPHA = 0.01
MIN_ITEMS = 20
FLAG = 0.1
SEED = 0


@dataclass(frozen=True)
class MetricDrift:
    """KS test of one complexity metric."""

    statistic: float  # D, the largest gap between the two empirical CDFs
    p_value: float
    critical: float  # D needed for significance at KS_ALPHA
    component: float  # the part of D above the critical value, rescaled to [0, 1]


@dataclass(frozen=True)
class Drift:
    """The drift report; ``score`` is the number to act on."""

    score: float
    flagged: bool
    family_js: float = 0.0
    family_null_floor: float = 0.0
    family_component: float = 0.0
    complexity_component: float = 0.0
    metrics: dict[str, MetricDrift] = field(default_factory=dict)
    reason: str = ""


def js_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon distance (square root of the divergence in bits) between two count vectors."""
    sp, sq = sum(p), sum(q)
    if sp <= 0 or sq <= 0:
        return 0.0
    total = 0.0
    for x, y in zip(p, q, strict=True):
        a, b = x / sp, y / sq
        m = (a + b) / 2
        if a > 0:
            total += a * math.log2(a / m) / 2
        if b > 0:
            total += b * math.log2(b / m) / 2
    return math.sqrt(min(1.0, max(0.0, total)))


def _shares(labels: Sequence[int], categories: Sequence[int]) -> list[float]:
    counts = dict.fromkeys(categories, 0)
    for label in labels:
        counts[label] += 1
    return [float(counts[c]) for c in categories]


def family_null_floor(baseline: Sequence[int], current: Sequence[int]) -> float:
    """The ``NULL_QUANTILE`` of the JS distance over random splits of the pooled labels (a permutation test)."""
    import numpy as np  # noqa: PLC0415 - heavy, imported only when drift is computed

    pooled = np.array([*baseline, *current])
    categories, codes = np.unique(pooled, return_inverse=True)
    rng = np.random.default_rng(SEED)
    n = len(baseline)
    values = []
    for _ in range(PERMUTATIONS):
        perm = rng.permutation(codes)
        a = np.bincount(perm[:n], minlength=len(categories))
        b = np.bincount(perm[n:], minlength=len(categories))
        values.append(js_distance(a.tolist(), b.tolist()))
    return float(np.quantile(values, NULL_QUANTILE))


def _rescale(value: float, floor: float) -> float:
    return 0.0 if floor >= 1 else min(1.0, max(0.0, (value - floor) / (1 - floor)))


def ks_critical(n: int, m: int, alpha: float = KS_ALPHA) -> float:
    """The asymptotic two-sample KS critical value."""
    return math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m))


def metric_drift(baseline: Sequence[float], current: Sequence[float]) -> MetricDrift:
    """Two-sample KS of one metric."""
    from scipy.stats import ks_2samp  # noqa: PLC0415 - heavy, imported only when drift is computed

    result = ks_2samp(baseline, current)
    statistic, p_value = float(result.statistic), float(result.pvalue)
    critical = ks_critical(len(baseline), len(current))
    return MetricDrift(statistic, p_value, critical, _rescale(statistic, critical))


def drift(
    baseline_families: Sequence[int],
    current_families: Sequence[int],
    baseline_metrics: Mapping[str, Sequence[float]],
    current_metrics: Mapping[str, Sequence[float]],
) -> Drift:
    """Compare the windows: family labels per item, and each complexity metric per item."""
    n, m = len(baseline_families), len(current_families)
    if min(n, m) < MIN_ITEMS:
        return Drift(
            0.0, False, reason=f"too few items to compare ({n} baseline, {m} current; need {MIN_ITEMS})"
        )
    categories = sorted({*baseline_families, *current_families})
    js = js_distance(_shares(baseline_families, categories), _shares(current_families, categories))
    floor = family_null_floor(baseline_families, current_families)
    family_component = _rescale(js, floor)
    metrics = {
        name: metric_drift(baseline_metrics[name], current_metrics[name])
        for name in baseline_metrics
        if name in current_metrics and baseline_metrics[name] and current_metrics[name]
    }
    complexity_component = max((d.component for d in metrics.values()), default=0.0)
    score = max(family_component, complexity_component)
    return Drift(score, score >= FLAG, js, floor, family_component, complexity_component, metrics)
