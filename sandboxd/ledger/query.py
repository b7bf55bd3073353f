"""Filtering entries for auditors: the facets stored next to each entry, and the SQL that filters on them.

Facets are *derived* from an entry's body when it is appended (``facets``) and stored in their own columns so
that filters use indexes. They are a convenience for finding entries, not evidence: ``verify`` never reads
them, and an auditor who doubts a facet checks the entry's canonical bytes, which the Merkle tree protects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Facets:
    """What the auditor API filters on. ``rules`` is `` r1 r2 `` (space-delimited, padded) or empty."""

    verdict: str | None
    decision: str | None
    task_type: str | None
    rules: str


def facets(body: Mapping[str, Any]) -> Facets:
    """The facets of a body: its ``status`` (runs) or ``reason`` (AZR), decision, task type and rule ids."""
    verdict = body.get("status", body.get("reason"))
    decision = body.get("decision")
    kind = decision.get("decision") if isinstance(decision, Mapping) else None
    rules: set[str] = set()
    if isinstance(decision, Mapping):
        for finding in decision.get("findings") or ():
            if isinstance(finding, Mapping) and isinstance(finding.get("rule_id"), str):
                rules.add(finding["rule_id"])
    if isinstance(body.get("rule"), str):  # tripwire events name one rule
        rules.add(body["rule"])
    task_type = body.get("task_type")
    return Facets(
        verdict=verdict if isinstance(verdict, str) else None,
        decision=kind if isinstance(kind, str) else None,
        task_type=task_type if isinstance(task_type, str) else None,
        rules="".join(f" {rule}" for rule in sorted(rules)) + " " if rules else "",
    )


@dataclass(frozen=True)
class EntryFilter:
    """Conditions that all must hold; ``None`` means any. ``since``/``until`` are entry-format times."""

    kind: str | None = None
    verdict: str | None = None
    decision: str | None = None
    rule: str | None = None
    task_type: str | None = None
    since: str | None = None  # inclusive
    until: str | None = None  # exclusive


def where(flt: EntryFilter, after: int, mark: str, find: str) -> tuple[str, list[Any]]:
    """The SQL condition and parameters for ``flt`` and ``seq > after``.

    ``mark`` is the driver's placeholder (``?`` or ``%s``); ``find`` is the substring-position function
    (``instr`` in SQLite, ``strpos`` in PostgreSQL), used so rule ids are matched literally (no LIKE escapes).
    """
    clauses: list[str] = [f"seq > {mark}"]
    params: list[Any] = [after]
    for column in ("kind", "verdict", "decision", "task_type"):
        value = getattr(flt, column)
        if value is not None:
            clauses.append(f"{column} = {mark}")
            params.append(value)
    if flt.rule is not None:
        clauses.append(f"{find}(rules, {mark}) > 0")
        params.append(f" {flt.rule} ")
    if flt.since is not None:
        clauses.append(f"time >= {mark}")
        params.append(flt.since)
    if flt.until is not None:
        clauses.append(f"time < {mark}")
        params.append(flt.until)
    return " AND ".join(clauses), params
