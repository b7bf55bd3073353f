"""Trusted-side parsing of a child's result frame (DESIGN.md §1).

A frame is valid only if it is exactly one length-prefixed JSON object with the expected
version and the run's nonce. Anything else, including trailing bytes, means "no valid frame".
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from typing import Any

from .runner.protocol import FRAME_VERSION, HEADER

_OUTCOMES = frozenset({"ok", "exception", "exit"})


@dataclass(frozen=True)
class ResultFrame:
    outcome: str
    exc_type: str | None
    exc_builtin: bool
    exit_code: int
    non_canonical: bool
    encode_error: str | None
    values: tuple[Any, ...]  # still tagged; decode with sandboxd.canonical


def parse_frame(raw: bytes, nonce: str) -> ResultFrame | None:
    """Return the frame, or None when it is missing, malformed, forged or has trailing bytes."""
    if len(raw) < HEADER.size:
        return None
    (length,) = HEADER.unpack_from(raw)
    if HEADER.size + length != len(raw):
        return None
    try:
        body = json.loads(raw[HEADER.size :])
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict) or body.get("v") != FRAME_VERSION:
        return None
    sent = body.get("nonce")
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
        return None
    outcome, exc_type, exit_code = body.get("outcome"), body.get("exc_type"), body.get("exit_code")
    values, encode_error = body.get("values"), body.get("encode_error")
    if (
        outcome not in _OUTCOMES
        or not (exc_type is None or isinstance(exc_type, str))
        or type(exit_code) is not int
        or not isinstance(values, list)
        or not (encode_error is None or isinstance(encode_error, str))
    ):
        return None
    return ResultFrame(
        outcome=outcome,
        exc_type=exc_type,
        exc_builtin=body.get("exc_builtin") is True,
        exit_code=exit_code,
        non_canonical=body.get("non_canonical") is True,
        encode_error=encode_error,
        values=tuple(values),
    )


def split_frames(raw: bytes, count: int) -> list[bytes]:
    """Cut ``raw`` at the first ``count`` length prefixes; the rest (if any) is the last chunk.

    Only runs that asked for probes are read this way: the validation's frame, then one frame per probe
    (docs/azr.md, "Output signature"). Each chunk is still checked whole by ``parse_frame``.
    """
    chunks: list[bytes] = []
    offset = 0
    while len(chunks) < count and len(raw) - offset >= HEADER.size:
        (length,) = HEADER.unpack_from(raw, offset)
        end = offset + HEADER.size + length
        if end > len(raw):
            break
        chunks.append(raw[offset:end])
        offset = end
    if offset < len(raw):
        chunks.append(raw[offset:])
    return chunks
