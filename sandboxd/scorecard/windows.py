"""Window specs: which ledger entries a scorecard compares.

A spec selects a contiguous run of entries (in seq order):

- ``all``: every entry;
- ``last:N`` / ``first:N``: the last or first N entries; ``N%`` is a share of all entries;
- ``seq:A:B``: seqs A (inclusive) to B (exclusive); either end may be empty;
- ``time:START/END``: entries with START <= time < END (RFC 3339, e.g. ``2026-01-01T00:00:00Z``); either
  end may be empty;
- ``before`` (baseline only): every entry before the current window starts.

The defaults compare the latest half of the ledger (``last:50%``) with everything before it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandboxd.curriculum.items import Record

DEFAULT_WINDOW = "last:50%"
DEFAULT_BASELINE = "before"
_COUNT = re.compile(r"^(first|last):(\d+)(%?)$")
_SEQ = re.compile(r"^seq:(\d*):(\d*)$")


class WindowError(ValueError):
    """A window spec that cannot be parsed."""


@dataclass(frozen=True)
class Span:
    """A resolved window: records[start:stop]."""

    spec: str
    start: int
    stop: int


def _time(text: str) -> str:
    """Normalise an RFC 3339 time to the entry format, so string order is time order."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise WindowError(f"bad time {text!r}: {exc}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _first_at_least(records: Sequence[Record], key: str | int, by_time: bool) -> int:
    lo, hi = 0, len(records)
    while lo < hi:
        mid = (lo + hi) // 2
        value = records[mid].time if by_time else records[mid].seq
        if value < key:  # type: ignore[operator]  # str with str, int with int
            lo = mid + 1
        else:
            hi = mid
    return lo


def resolve(spec: str, records: Sequence[Record], *, before: int | None = None) -> Span:
    """Resolve ``spec`` over ``records`` (in seq order). ``before`` is the current window's start."""
    n = len(records)
    spec = spec.strip()
    if spec == "all":
        return Span(spec, 0, n)
    if spec == "before":
        if before is None:
            raise WindowError("'before' is only valid for the baseline window")
        return Span(spec, 0, before)
    if m := _COUNT.match(spec):
        side, amount, percent = m.group(1), int(m.group(2)), m.group(3)
        if percent and amount > 100:
            raise WindowError(f"{spec!r}: a share cannot exceed 100%")
        count = min(n, n * amount // 100 if percent else amount)
        return Span(spec, 0, count) if side == "first" else Span(spec, n - count, n)
    if m := _SEQ.match(spec):
        lo = _first_at_least(records, int(m.group(1)), False) if m.group(1) else 0
        hi = _first_at_least(records, int(m.group(2)), False) if m.group(2) else n
        return Span(spec, lo, max(lo, hi))
    if spec.startswith("time:") and "/" in spec:
        start, _, end = spec.removeprefix("time:").partition("/")
        lo = _first_at_least(records, _time(start), True) if start else 0
        hi = _first_at_least(records, _time(end), True) if end else n
        return Span(spec, lo, max(lo, hi))
    raise WindowError(
        f"bad window {spec!r}: use all, first:N, last:N, first:N%, last:N%, seq:A:B, time:START/END or before"
    )


def validate(spec: str, *, baseline: bool = False) -> str:
    """Check a spec's syntax without a ledger (for CLI flags and settings); return it unchanged."""
    if baseline and spec.strip() == "before":
        return spec
    resolve(spec, [])
    return spec
