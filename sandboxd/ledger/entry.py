"""Ledger entries and their canonical JSON encoding.

An entry is ``{"seq", "kind", "time", "body"}``. Its canonical bytes are ``json.dumps`` with sorted keys, no
whitespace, ASCII only and no NaN or infinity; those bytes are the Merkle leaf data, so any verifier that
can parse JSON can recompute the tree. ``time`` is an RFC 3339 UTC string with microseconds.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson


class Kind(enum.StrEnum):
    """What happened; one value per event source in the curriculum loop."""

    TASK_PROPOSED = "task_proposed"  # the proposer invented a task
    ANSWER_CHECKED = "answer_checked"  # a solver answer was executed and compared
    VERDICT = "verdict"  # the executor's verdict for a run
    WATCHDOG_DECISION = "watchdog_decision"  # the static watchdog allowed, warned or vetoed a program
    TRIPWIRE = "tripwire"  # a runtime tripwire fired
    THROTTLE_CHANGE = "throttle_change"  # the throttle moved to another band
    POLICY_CHANGE = "policy_change"  # an effective policy was loaded or changed
    ADMIN_ACTION = "admin_action"  # an operator did something by hand
    REVIEW_LABEL = "review_label"  # a human reviewer approved or flagged a sampled item (docs/reviews.md)


_KINDS = frozenset(k.value for k in Kind)


class EntryError(ValueError):
    """Bytes that are not a canonical ledger entry."""


# Exactly what ``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
# allow_nan=False)`` builds on every call; stateless, so one instance is shared.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def canonical_json(value: Any) -> bytes:
    """The canonical encoding of a JSON value."""
    return _CANONICAL.encode(value).encode("ascii")


def _fast_loads(data: bytes) -> Any:
    """A fast parse that may differ from ``json.loads`` (orjson turns integers beyond 64 bits into floats)."""
    return orjson.loads(data)


def now() -> str:
    """The current UTC time in the entry format."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Entry:
    """One ledger entry; ``seq`` is its leaf index, starting at 0."""

    seq: int
    kind: Kind
    time: str
    body: dict[str, Any]

    def encode(self) -> bytes:
        """The canonical bytes (the Merkle leaf data)."""
        return canonical_json(
            {"seq": self.seq, "kind": self.kind.value, "time": self.time, "body": self.body}
        )

    @classmethod
    def decode(cls, data: bytes) -> Entry:
        """Parse canonical bytes; raise ``EntryError`` if they are malformed or not canonical.

        ``json.loads`` defines the answer; orjson is tried first because it is several times faster. If
        orjson's value encodes back to exactly ``data``, then ``data`` is the canonical encoding of that
        value and ``json.loads`` would give the same value, so the answer is the same. Anything else
        (orjson refuses it, or its value does not round-trip, as with integers beyond 64 bits) is decided
        by ``json.loads`` alone, which also gives the reason.
        """
        try:
            return cls._checked(data, _fast_loads(data))
        except (EntryError, ValueError):  # orjson.JSONDecodeError is a ValueError
            pass
        try:
            obj = json.loads(data)
        except (UnicodeDecodeError, ValueError) as exc:
            raise EntryError(f"not JSON: {exc}") from exc
        return cls._checked(data, obj)

    @classmethod
    def _checked(cls, data: bytes, obj: Any) -> Entry:
        """The entry ``obj`` (parsed from ``data``), if it has the right fields and ``data`` is its canonical form."""
        if not isinstance(obj, dict) or set(obj) != {"seq", "kind", "time", "body"}:
            raise EntryError("fields must be exactly seq, kind, time, body")
        seq, kind, time, body = obj["seq"], obj["kind"], obj["time"], obj["body"]
        if type(seq) is not int or seq < 0:
            raise EntryError("seq must be a non-negative integer")
        if not isinstance(kind, str) or kind not in _KINDS:
            raise EntryError(f"unknown kind {kind!r}")
        if not isinstance(time, str) or not isinstance(body, dict):
            raise EntryError("time must be a string and body an object")
        entry = cls(seq, Kind(kind), time, body)
        try:
            encoded = entry.encode()
        except ValueError as exc:  # a number that parses but has no JSON encoding, such as 1e999
            raise EntryError(f"not in canonical form: {exc}") from exc
        if encoded != data:
            raise EntryError("not in canonical form")
        return entry
