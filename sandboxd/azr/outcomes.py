"""Reading a ``calls`` job's result frame into per-call outcomes (trusted side, pure)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from sandboxd.azr.equality import comparison_key
from sandboxd.azr.schemas import Reason, Usage
from sandboxd.canonical import DecodeError, decode
from sandboxd.run import RunResult
from sandboxd.verdict import Status

_STATUS_REASONS = {
    Status.TIMEOUT: Reason.TIMEOUT,
    Status.MEMORY_LIMIT: Reason.MEMORY_LIMIT,
    Status.OUTPUT_LIMIT: Reason.OUTPUT_LIMIT,
    Status.SANDBOX_VIOLATION: Reason.SANDBOX_VIOLATION,
    Status.INTERNAL_ERROR: Reason.INTERNAL_ERROR,
    Status.INFRASTRUCTURE_ERROR: Reason.INFRASTRUCTURE_ERROR,
}


@dataclass(frozen=True)
class CallOutcome:
    """One evaluation inside the sandbox: a value (tagged and decoded) and its repr, or an error."""

    ok: bool
    tagged: Any = None
    value: Any = None
    repr_text: str | None = None
    error: str | None = None
    # The value's comparison key when it is known already (an expected output read as a literal,
    # TextMemo.literal_key); None: computed from ``value`` when asked.
    comparison: Any = field(default=None, compare=False, repr=False)

    def key(self) -> Any:
        """``equality.comparison_key(value)``: two values are equal exactly when their keys are."""
        return self.comparison if self.comparison is not None else comparison_key(self.value)

    @functools.cached_property
    def canonical(self) -> bool:
        """Whether the value is all canonical types (no repr fallback anywhere in it). Judging asks this
        several times per value, and a value can be large: the walk is made once."""
        return self.ok and not _has_repr_tag(self.tagged)


def _has_repr_tag(tagged: Any) -> bool:
    """Whether a tagged value holds an ``["r", repr]`` node anywhere (iterative: values nest deep)."""
    pending = [tagged]
    while pending:
        node = pending.pop()
        if type(node) is list:
            if len(node) == 2 and node[0] == "r":
                return True
            pending.extend(node)
    return False


def usage(result: RunResult) -> Usage:
    return Usage(
        wall_time_seconds=result.wall_time_seconds,
        cpu_time_seconds=result.cpu_time_seconds,
        peak_memory_bytes=result.peak_memory_bytes,
    )


def failure_reason(result: RunResult) -> tuple[Reason, str | None] | None:
    """Why the whole run failed, or None when its frame holds per-call outcomes."""
    if result.status in _STATUS_REASONS:
        return _STATUS_REASONS[result.status], result.detail
    frame = result.frame
    if result.status is not Status.OK or frame is None:
        if frame is not None and frame.exc_type in ("SyntaxError", "IndentationError", "TabError"):
            return Reason.SYNTAX_ERROR, frame.exc_type
        exc = frame.exc_type if frame is not None else "no result frame"
        return Reason.RUNTIME_ERROR, exc
    if frame.encode_error is not None:
        if "bytes of text" in frame.encode_error:  # the encoder's size budget, not the value's type
            return Reason.OUTPUT_LIMIT, f"value too large: {frame.encode_error}"
        return Reason.NON_CANONICAL_OUTPUT, f"value not encodable: {frame.encode_error}"
    return None


def call_outcomes(result: RunResult, expected: int) -> list[CallOutcome] | tuple[Reason, str]:
    """Decode the frame's values into exactly ``expected`` outcomes, or a reason for failure."""
    assert result.frame is not None
    values = result.frame.values
    if len(values) != expected:
        return Reason.RUNTIME_ERROR, f"expected {expected} results, frame has {len(values)}"
    outcomes: list[CallOutcome] = []
    try:
        for tagged in values:
            outcomes.append(outcome_of_tagged(tagged))
    except DecodeError as exc:
        return Reason.NON_CANONICAL_OUTPUT, f"undecodable value: {exc}"
    return outcomes


def outcome_of_tagged(tagged: Any) -> CallOutcome:
    """One call's outcome from its tagged result (``("ok", value, repr)`` or ``("error", name)``);
    raises :class:`~sandboxd.canonical.DecodeError` when it has another shape."""
    if not (
        isinstance(tagged, list) and len(tagged) == 2 and tagged[0] == "t" and isinstance(tagged[1], list)
    ):
        raise DecodeError("call result is not a tuple")
    items = tagged[1]
    status = decode(items[0]) if items else None
    if status == "error" and len(items) == 2:
        name = decode(items[1])
        return CallOutcome(ok=False, error=name if isinstance(name, str) else "error")
    if status == "ok" and len(items) == 3:
        repr_text = decode(items[2])
        return CallOutcome(
            ok=True,
            tagged=items[1],
            value=decode(items[1]),
            repr_text=repr_text if isinstance(repr_text, str) else None,
        )
    raise DecodeError("call result has an unknown shape")
