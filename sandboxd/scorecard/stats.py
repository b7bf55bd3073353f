"""Counts and rates over ledger records: pure functions on plain values, no analysis of programs.

- Volume per task type: proposals, valid proposals (``valid`` true), checked answers and correct ones.
  Validity rate is valid / proposals with a known ``valid``; solve rate is correct / checks with a
  known ``correct``.
- Watchdog: every record carrying a ``decision`` was screened. A rule's veto rate is the number of
  screened records it vetoed (an ``enforce`` finding on a ``veto`` decision) over all screened records.
- Tripwires: ``tripwire`` records by ``rule``.
- Throttle: the ``band`` and ``confidence`` of each ``throttle_change`` record, in order.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sandboxd.curriculum.items import Record

RECENT = 20  # tripwire events listed individually
BANDS = ("normal", "slow", "paused", "halted")  # the throttle's bands, in the metric's 0..3 order


def _rate(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def volume(records: Iterable[Record]) -> dict[str, dict[str, Any]]:
    """Per task type: proposals, validity and solve rates."""
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    for r in records:
        if r.kind == "task_proposed":
            row = rows[r.task_type()]
            row["proposed"] += 1
            valid = r.flag("valid")
            if valid is not None:
                row["judged"] += 1
                row["valid"] += valid
        elif r.kind == "answer_checked":
            row = rows[r.task_type()]
            row["checked"] += 1
            correct = r.flag("correct")
            if correct is not None:
                row["scored"] += 1
                row["correct"] += correct
    return {
        task_type: {
            "proposed": row["proposed"],
            "valid": row["valid"],
            "validity_rate": _rate(row["valid"], row["judged"]),
            "checked": row["checked"],
            "correct": row["correct"],
            "solve_rate": _rate(row["correct"], row["scored"]),
        }
        for task_type, row in sorted(rows.items())
    }


def watchdog(records: Iterable[Record]) -> dict[str, Any]:
    """Screened, warned and vetoed records, and per rule its veto, warn and audit counts and veto rate."""
    screened = vetoed = warned = 0
    per_rule: dict[str, Counter[str]] = defaultdict(Counter)
    for r in records:
        decision, findings = r.decision()
        if decision is None:
            continue
        screened += 1
        vetoed += decision == "veto"
        warned += decision == "warn"
        for rule, mode in set(findings):
            if mode == "enforce" and decision == "veto":
                per_rule[rule]["veto"] += 1
            elif mode == "warn":
                per_rule[rule]["warn"] += 1
            else:
                per_rule[rule]["audit"] += 1
    rules = {
        rule: {
            "veto": c["veto"],
            "warn": c["warn"],
            "audit": c["audit"],
            "veto_rate": _rate(c["veto"], screened),
        }
        for rule, c in sorted(per_rule.items(), key=lambda kv: (-kv[1]["veto"], kv[0]))
    }
    return {
        "screened": screened,
        "vetoed": vetoed,
        "warned": warned,
        "veto_rate": _rate(vetoed, screened),
        "rules": rules,
    }


def tripwires(records: Iterable[Record]) -> dict[str, Any]:
    """Tripwire events by rule, and the most recent ones."""
    events = [r for r in records if r.kind == "tripwire"]
    by_rule = Counter(r.text("rule") or "unknown" for r in events)
    recent = [{"seq": r.seq, "time": r.time, "rule": r.text("rule") or "unknown"} for r in events[-RECENT:]]
    return {"total": len(events), "by_rule": dict(by_rule.most_common()), "recent": recent}


def band_level(band: Any) -> int | None:
    """A band as the metric's number (0 normal .. 3 halted), from its name or number."""
    if isinstance(band, str) and band in BANDS:
        return BANDS.index(band)
    if type(band) is int and 0 <= band < len(BANDS):
        return band
    return None


def throttle(records: Iterable[Record]) -> list[dict[str, Any]]:
    """The band history: one point per throttle change with a recognisable band."""
    history = []
    for r in records:
        if r.kind != "throttle_change":
            continue
        level = band_level(r.body.get("band"))
        if level is None:
            continue
        confidence = r.body.get("confidence")
        if type(confidence) not in (int, float):
            confidence = None
        history.append(
            {
                "seq": r.seq,
                "time": r.time,
                "band": BANDS[level],
                "level": level,
                "confidence": None if confidence is None else float(confidence),
            }
        )
    return history


def kinds(records: Sequence[Record]) -> dict[str, int]:
    """Entries per kind."""
    return dict(Counter(r.kind for r in records).most_common())
