"""The scorecard's curriculum sections: families ranked by growth, diversity, novelty and trends."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sandboxd.curriculum import analysis
from sandboxd.curriculum.analysis import Curriculum
from sandboxd.curriculum.families import NOISE
from sandboxd.curriculum.items import Record

TOP_FAMILIES = 10
EXAMPLE_CHARS = 4000  # example programs are cut to this many characters
TREND_BUCKETS = 20


def _shares(labels: Sequence[int]) -> dict[int, float]:
    n = len(labels)
    return {k: c / n for k, c in Counter(labels).items()} if n else {}


def ranked_families(
    curriculum: Curriculum, baseline: Sequence[Record], current: Sequence[Record], novelty: Sequence[float]
) -> list[dict[str, Any]]:
    """Every family with its share in each window, ranked by growth in share (current - baseline)."""
    base_labels, cur_labels = curriculum.labels(baseline), curriculum.labels(current)
    base, cur = _shares(base_labels), _shares(cur_labels)
    base_n, cur_n = Counter(base_labels), Counter(cur_labels)
    novelty_by: dict[int, list[float]] = {}
    for label, score in zip(cur_labels, novelty, strict=True):
        novelty_by.setdefault(label, []).append(score)
    rows: list[dict[str, Any]] = []
    for family in curriculum.clustering.families.values():
        k = family.id
        rows.append(
            {
                "id": k,
                "name": family.name,
                "top_features": list(family.top_features),
                "distinct_programs": family.size,
                "baseline_count": base_n[k],
                "current_count": cur_n[k],
                "baseline_share": base.get(k, 0.0),
                "current_share": cur.get(k, 0.0),
                "growth": cur.get(k, 0.0) - base.get(k, 0.0),
                "novelty": statistics.fmean(novelty_by[k]) if k in novelty_by else None,
                "examples": [curriculum.programs[i][:EXAMPLE_CHARS] for i in family.exemplars],
            }
        )
    rows.sort(key=lambda r: (r["id"] == NOISE, -r["growth"], r["id"]))
    return rows


def top_families(ranked: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first ``TOP_FAMILIES`` real families by growth, then the noise bucket (if any)."""
    return [f for f in ranked if f["id"] != NOISE][:TOP_FAMILIES] + [f for f in ranked if f["id"] == NOISE]


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def complexity(curriculum: Curriculum, items: Sequence[Record]) -> dict[str, dict[str, float | None]]:
    """Median, mean and 90th percentile of each complexity metric."""
    out: dict[str, dict[str, float | None]] = {}
    for name, values in curriculum.metrics(items).items():
        ordered = sorted(values)
        out[name] = {
            "median": _median(ordered),
            "mean": statistics.fmean(ordered) if ordered else None,
            "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] if ordered else None,
        }
    return out


def trends(curriculum: Curriculum, items: Sequence[Record]) -> list[dict[str, Any]]:
    """The proposals split into up to ``TREND_BUCKETS`` equal runs, each with complexity and diversity."""
    n = len(items)
    buckets = min(TREND_BUCKETS, n)
    out = []
    for b in range(buckets):
        chunk = items[b * n // buckets : (b + 1) * n // buckets]
        metrics = curriculum.metrics(chunk)
        div = analysis.diversity(curriculum, chunk)
        valid = [v for r in chunk if (v := r.flag("valid")) is not None]
        out.append(
            {
                "first_seq": chunk[0].seq,
                "last_seq": chunk[-1].seq,
                "start_time": chunk[0].time,
                "items": len(chunk),
                "cyclomatic_median": _median(metrics["cyclomatic"]),
                "halstead_volume_median": _median(metrics["halstead_volume"]),
                "sloc_mean": statistics.fmean(metrics["sloc"]) if metrics["sloc"] else None,
                "distinct_rate": div["near_duplicate_groups"] / div["items"],
                "family_entropy": div["family_entropy"],
                "validity_rate": sum(valid) / len(valid) if valid else None,
            }
        )
    return out
