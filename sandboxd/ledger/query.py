"""Filtering entries for auditors: the facets stored next to each entry, and the SQL that filters on them.

Facets are *derived* from an entry's body when it is appended (``facets``) and stored in their own columns so
that filters use indexes. They are a convenience for finding entries, not evidence: ``verify`` never reads
them, and an auditor who doubts a facet checks the entry's canonical bytes, which the Merkle tree protects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .families import program_digest


@dataclass(frozen=True)
class Facets:
    """What the auditor API filters on. ``rules`` is `` r1 r2 `` (space-delimited, padded) or empty.

    ``program_sha256`` is the hex SHA-256 of the body's ``program`` (proposals and checked answers), which
    family sets (``families.py``) map to task families.
    """

    verdict: str | None
    decision: str | None
    task_type: str | None
    rules: str
    program_sha256: str | None = None


def facets(body: Mapping[str, Any]) -> Facets:
    """The facets of a body: its ``status`` (runs) or ``reason`` (AZR), decision, task type and rule ids.

    JSON objects are dicts (the canonical encoding accepts nothing else), so plain ``dict`` checks are used:
    this runs once per appended entry.
    """
    get = body.get
    verdict = get("status", get("reason"))
    decision = get("decision")
    kind = None
    rules: set[str] = set()
    if isinstance(decision, dict):
        kind = decision.get("decision")
        for finding in decision.get("findings") or ():
            if isinstance(finding, dict) and isinstance(rule_id := finding.get("rule_id"), str):
                rules.add(rule_id)
    if isinstance(rule := get("rule"), str):  # tripwire events name one rule
        rules.add(rule)
    task_type = get("task_type")
    program = get("program")
    return Facets(
        verdict if isinstance(verdict, str) else None,
        kind if isinstance(kind, str) else None,
        task_type if isinstance(task_type, str) else None,
        "".join(f" {rule}" for rule in sorted(rules)) + " " if rules else "",
        program_digest(program) if isinstance(program, str) else None,
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
    family: tuple[str, int] | None = None  # (family set id, family id): entries whose program is in it


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
    if flt.family is not None:
        members = f"SELECT program_sha256 FROM family_members WHERE family_set = {mark} AND family = {mark}"  # noqa: S608 - placeholders only
        clauses.append(f"program_sha256 IN ({members})")
        params.extend(flt.family)
    if flt.since is not None:
        clauses.append(f"time >= {mark}")
        params.append(flt.since)
    if flt.until is not None:
        clauses.append(f"time < {mark}")
        params.append(flt.until)
    return " AND ".join(clauses), params
