"""The canonical encoding round-trips exact builtin values and never trusts model objects."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from sandboxd.canonical import DecodeError, NonCanonical, decode
from sandboxd.runner.encode import EncodeLimitError, Encoder


def roundtrip(value: Any, **caps: Any) -> Any:
    return decode(json.loads(Encoder(**caps).to_json(value)))


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -7,
        2**200,
        1.5,
        -0.0,
        math.inf,
        -math.inf,
        1e-300,
        "",
        "héllo",
        "a\ud800b",
        b"\x00\xff",
        [],
        [1, [2, [3]]],
        (),
        (1, "a"),
        {1, 2},
        frozenset({"x"}),
        {},
        {"k": [1, (2, 3)], 4: None},
        {(1, 2): frozenset({1})},
        [True, 1, 1.0],
    ],
)
def test_roundtrip_preserves_value_and_type(value: Any) -> None:
    """Decoding an encoded value gives back an equal value with the same repr (so the same types)."""
    assert repr(roundtrip(value)) == repr(value)


def test_nan_roundtrips() -> None:
    """NaN survives as a float NaN."""
    assert math.isnan(roundtrip(float("nan")))


class LiesAboutEquality:
    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "42"


class SneakyInt(int):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = int.__hash__


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(LiesAboutEquality(), NonCanonical("42"), id="lying-eq"),
        pytest.param(SneakyInt(3), NonCanonical("3"), id="int-subclass"),
        pytest.param([LiesAboutEquality()], [NonCanonical("42")], id="nested"),
    ],
)
def test_model_objects_become_non_canonical(value: Any, expected: Any) -> None:
    """Objects outside the exact builtin types are reported by repr, never compared by their __eq__."""
    encoder = Encoder()
    decoded = decode(json.loads(encoder.to_json(value)))
    assert encoder.non_canonical
    assert decoded == expected
    assert decoded != 42


def test_repr_disallowed_raises() -> None:
    """A policy that forbids repr fallback rejects non-canonical values outright."""
    with pytest.raises(EncodeLimitError):
        Encoder(allow_repr=False).to_json(LiesAboutEquality())


@pytest.mark.parametrize(
    ("value", "caps"),
    [
        pytest.param([[[[[1]]]]], {"max_depth": 3}, id="depth"),
        pytest.param(list(range(50)), {"max_nodes": 10}, id="nodes"),
        pytest.param(10**500, {"max_int_digits": 100}, id="digits"),
        pytest.param("x" * 1000, {"max_text_bytes": 100}, id="text"),
    ],
)
def test_caps_are_enforced(value: Any, caps: dict[str, int]) -> None:
    """Values beyond the caps raise instead of producing huge frames."""
    with pytest.raises(EncodeLimitError):
        Encoder(**caps).to_json(value)


def test_self_referencing_list_hits_depth_cap() -> None:
    """A list that contains itself stops at the depth cap."""
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(EncodeLimitError):
        Encoder().to_json(loop)


@pytest.mark.parametrize(
    "tagged",
    [
        ["i", "12a"],
        ["i", 5],
        ["i", ""],
        ["i", "-"],
        ["i", " 1"],
        ["i", "+1"],
        ["i", "1_000"],
        ["f", "1.0; import os"],
        ["f", "0x10"],
        ["b", "***"],
        ["z", "?"],
        ["l", "notalist"],
        ["S", [["l", []]]],
        ["d", [[["l", []], None]]],
        ["d", [1]],
        "bare",
        7,
        ["s"],
    ],
)
def test_malformed_tagged_values_are_rejected(tagged: Any) -> None:
    """The decoder accepts only the documented tags and shapes."""
    with pytest.raises(DecodeError):
        decode(tagged)


def test_decoder_depth_cap() -> None:
    """Deeply nested input is rejected rather than recursing without bound."""
    node: Any = ["i", "1"]
    for _ in range(100):
        node = ["l", [node]]
    with pytest.raises(DecodeError):
        decode(node, max_depth=64)


@pytest.mark.parametrize(
    ("body", "value"),
    [("0", 0), ("12", 12), ("-12", -12), ("007", 7), ("\u0661\u0662", 12), ("12\n", 12)],
)
def test_integer_text_is_read_as_the_pattern_reads_it(body: str, value: int) -> None:
    """Plain ASCII digits skip the pattern (a speed path); the pattern still decides everything else,
    including what it has always let through (other scripts' digits, one trailing newline)."""
    decoded = decode(["i", body])
    assert type(decoded) is int
    assert decoded == value


def test_integer_digit_cap_applies_on_the_fast_path() -> None:
    assert decode(["i", "9" * 12], max_int_digits=12) == int("9" * 12)
    with pytest.raises(DecodeError):
        decode(["i", "9" * 14], max_int_digits=12)
