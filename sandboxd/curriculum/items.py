"""Ledger entries read back for analysis, tolerant of missing and extra body fields.

Entries are read only through the store's ``entries()`` (so every backend works) and decoded with
``Entry.decode``; rows that do not decode are counted, not trusted (``sandboxd ledger verify`` names them).
Body fields are looked up defensively: a missing field is ``None`` and a field of the wrong type is
treated as missing, since every string in a body may come from a model.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sandboxd.ledger.entry import Entry, EntryError
from sandboxd.ledger.store import StoredEntry


@dataclass(frozen=True)
class Record:
    """One decoded entry."""

    seq: int
    kind: str
    time: str
    body: dict[str, Any]

    def text(self, key: str) -> str | None:
        """A string field, or ``None``."""
        value = self.body.get(key)
        return value if isinstance(value, str) else None

    def flag(self, key: str) -> bool | None:
        """A boolean field, or ``None``."""
        value = self.body.get(key)
        return value if isinstance(value, bool) else None

    def task_type(self) -> str:
        """The task type, ``"unknown"`` when absent."""
        return self.text("task_type") or "unknown"

    def decision(self) -> tuple[str | None, list[tuple[str, str]]]:
        """The watchdog decision (``allow``/``warn``/``veto`` or ``None``) and its (rule_id, mode) findings."""
        raw = self.body.get("decision")
        if isinstance(raw, str):  # a watchdog_decision entry may carry the decision flat
            raw = {"decision": raw, "findings": self.body.get("findings")}
        if not isinstance(raw, dict):
            return None, []
        decision = raw.get("decision") if isinstance(raw.get("decision"), str) else None
        findings = raw.get("findings")
        if not isinstance(findings, list):
            findings = []
        pairs = [
            (str(f.get("rule_id")), str(f.get("mode")))
            for f in findings
            if isinstance(f, dict) and isinstance(f.get("rule_id"), str)
        ]
        return decision, pairs


@dataclass
class Loaded:
    """The decoded entries in seq order, and how many rows could not be decoded."""

    records: list[Record]
    malformed: int


def decode(rows: Iterable[StoredEntry]) -> Loaded:
    """Decode stored rows, skipping (and counting) any that are not canonical entries."""
    records: list[Record] = []
    malformed = 0
    for row in rows:
        try:
            entry = Entry.decode(row.data)
        except EntryError:
            malformed += 1
            continue
        records.append(Record(entry.seq, entry.kind.value, entry.time, entry.body))
    return Loaded(records, malformed)


def proposals(records: Iterable[Record]) -> Iterator[Record]:
    """The ``task_proposed`` records that carry a program text: the curriculum itself."""
    for record in records:
        if record.kind == "task_proposed" and record.text("program") is not None:
            yield record
