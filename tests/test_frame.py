"""Result frames are trusted only when they are whole, versioned and carry the run's nonce."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandboxd.frame import parse_frame
from sandboxd.runner.protocol import HEADER

NONCE = "0f" * 16


def framed(body: Any, extra: bytes = b"") -> bytes:
    data = json.dumps(body).encode() if not isinstance(body, bytes) else body
    return HEADER.pack(len(data)) + data + extra


GOOD = {"v": 1, "nonce": NONCE, "outcome": "ok", "exc_type": None, "exit_code": 0, "values": [["i", "1"]]}


def test_valid_frame_is_parsed() -> None:
    """A well-formed frame with the right nonce yields its outcome and tagged values."""
    frame = parse_frame(framed(GOOD), NONCE)
    assert frame is not None
    assert frame.outcome == "ok"
    assert frame.values == (["i", "1"],)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00\x00", id="short-header"),
        pytest.param(framed({**GOOD, "nonce": "guess"}), id="wrong-nonce"),
        pytest.param(framed({**GOOD, "nonce": None}), id="missing-nonce"),
        pytest.param(framed(GOOD, extra=framed(GOOD)), id="two-frames"),
        pytest.param(framed(GOOD)[:-1], id="truncated"),
        pytest.param(framed(b"not json"), id="not-json"),
        pytest.param(framed([1, 2]), id="not-an-object"),
        pytest.param(framed({**GOOD, "v": 2}), id="wrong-version"),
        pytest.param(framed({**GOOD, "outcome": "passed"}), id="unknown-outcome"),
        pytest.param(framed({**GOOD, "exit_code": "0"}), id="exit-code-not-int"),
        pytest.param(framed({**GOOD, "exit_code": True}), id="exit-code-bool"),
        pytest.param(framed({**GOOD, "values": {}}), id="values-not-list"),
        pytest.param(framed(b"[" * 100_000 + b"]" * 100_000), id="deeply-nested"),
    ],
)
def test_invalid_frames_are_rejected(raw: bytes) -> None:
    """Anything but exactly one well-formed frame with the nonce counts as no frame."""
    assert parse_frame(raw, NONCE) is None


def test_lone_surrogates_and_non_ascii_text_come_through() -> None:
    """A string with a lone surrogate (a program can return one) comes through exactly, and so does
    non-ASCII text: a faster JSON reader that refuses them must not be swapped in."""
    surrogate = {**GOOD, "values": [["s", "\ud800x"], ["s", "\u00e9\u4e2d"]]}
    frame = parse_frame(framed(surrogate), NONCE)
    assert frame is not None
    assert frame.values == (["s", "\ud800x"], ["s", "\u00e9\u4e2d"])
