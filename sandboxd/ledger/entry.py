"""Ledger entries and their canonical JSON encoding.

An entry is ``{"seq", "kind", "time", "body"}``. Its canonical bytes are ``json.dumps`` with sorted keys, no
whitespace, ASCII only and no NaN or infinity; those bytes are the Merkle leaf data, so any verifier that
can parse JSON can recompute the tree. ``time`` is an RFC 3339 UTC string with microseconds.
"""

from __future__ import annotations

import enum
import json
import re
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


# orjson is several times faster and gives the same bytes except where its output shows otherwise: non-ASCII
# text (it writes UTF-8), DEL (json escapes it), and floats it writes in exponent form or as 0.0000...
# (json's repr switches to exponent form below 1e-4). Any of those, or a value orjson refuses (integers
# beyond 64 bits, non-str keys, subclasses, dataclasses), falls back to json itself. Used only to re-encode
# parsed entries in the canonical check (``reencode_parsed``); tests/test_ledger_speed.py compares the two.
_FAST_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
_EXPONENT = re.compile(rb"e[-+]")  # orjson writes exponents as e+N / e-N (never E, never unsigned)
_DIGITS = frozenset(b"0123456789")


def _like_json(fast: bytes) -> bool:
    """Whether orjson's bytes are json's too. Conservative: an ``e+``/``e-`` after a digit or a ``0.0000``
    anywhere (a float, or text that looks like one) sends the value to json itself."""
    if not fast.isascii() or b"\x7f" in fast or b"0.0000" in fast:
        return False
    return all(fast[m.start() - 1] not in _DIGITS for m in _EXPONENT.finditer(fast))


def _slow_json(value: Any) -> bytes:
    return _CANONICAL.encode(value).encode("ascii")


def canonical_json(value: Any) -> bytes:
    """The canonical encoding of a JSON value: ``json.dumps`` with sorted keys, compact, ASCII, no NaN."""
    return _slow_json(value)


def reencode_parsed(value: Any) -> bytes:
    """``canonical_json`` of a value parsed from bytes, to compare with those bytes (the canonical check).

    orjson writes it when its bytes are provably json's (``_like_json``). One difference remains and does
    not matter here: a NaN or infinity the parse produced (from ``NaN``, ``Infinity`` or ``1e999``) comes out
    as ``null``, which never equals the bytes it was parsed from, so the answer (not canonical) is the one
    json's refusal gives. Appends use ``canonical_json``: half of all bodies hold a null, which would send
    them to json anyway after a wasted orjson pass.
    """
    try:
        fast = orjson.dumps(value, option=_FAST_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: a value orjson does not write the way json does
        return _slow_json(value)
    return fast if _like_json(fast) else _slow_json(value)


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
            encoded = reencode_parsed({"seq": seq, "kind": kind, "time": time, "body": body})
        except ValueError as exc:  # a number that parses but has no JSON encoding, such as 1e999
            raise EntryError(f"not in canonical form: {exc}") from exc
        if encoded != data:
            raise EntryError("not in canonical form")
        return entry
