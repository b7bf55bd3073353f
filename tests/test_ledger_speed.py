"""The ledger's fast paths give exactly the bytes and answers of the plain ones (docs/ledger.md, "Speed").

The canonical check re-encodes parsed entries with orjson when its bytes are provably json's, and with
``json.dumps`` otherwise (``reencode_parsed``); verify hashes leaves in its worker processes. Neither may change a single byte or answer.
"""

from __future__ import annotations

import json
import math
import random
import struct
from typing import Any

import pytest

from sandboxd.ledger import merkle, scan
from sandboxd.ledger.entry import Entry, EntryError, Kind, canonical_json, reencode_parsed
from sandboxd.ledger.store import StoredEntry


def plain(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


def random_floats(n: int) -> list[float]:
    rng = random.Random(11)
    out: list[float] = []
    while len(out) < n:
        kind = len(out) % 3
        if kind == 0:
            x = struct.unpack("d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        elif kind == 1:
            x = rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30)
        else:
            x = round(rng.random() * 10 ** rng.randint(-6, 17), rng.randint(0, 12))
        if math.isfinite(x):
            out.append(x)
    return out


AWKWARD = [
    pytest.param({"s": "".join(map(chr, range(128)))}, id="every-ascii-char"),
    pytest.param({"s": "caf\u00e9 \u2028 \U0001f600 \ud800"}, id="non-ascii-and-lone-surrogate"),
    pytest.param({"big": 10**30, "neg": -(2**64), "edge": 2**63, "bool": True, "none": None}, id="integers"),
    pytest.param(
        {"f": [0.1, 1.0, -0.0, 1e16, 1e-5, 1e-4, 5e-324, 1.7976931348623157e308, 123456.789]}, id="floats"
    ),
    pytest.param({"z": 1, "a": {"y": [], "b": {}}, "m": [[], [{}], "x"]}, id="nesting"),
    pytest.param({"text": "line e-5 and 1e+5 and 0.00001 in a string"}, id="float-like-text"),
    pytest.param({"t": (1, "a"), "k": Kind.VERDICT}, id="tuple-and-str-enum"),
]


@pytest.mark.parametrize("value", AWKWARD)
def test_canonical_json_is_exactly_json_dumps(value: dict[str, Any]) -> None:
    """Every awkward value encodes to json.dumps's bytes, whichever path writes them."""
    assert canonical_json(value) == plain(value)
    assert reencode_parsed(value) == plain(value)


def test_random_floats_encode_like_json_dumps() -> None:
    """Fifty thousand floats of every magnitude: orjson's digits are used only when they are json's."""
    for x in random_floats(50_000):
        value = {"v": [x, "text"]}
        assert reencode_parsed(value) == plain(value), x


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_is_refused_as_json_refuses_it(bad: float) -> None:
    """A NaN or infinity is an error, never a silent null."""
    with pytest.raises(ValueError, match="Out of range"):
        canonical_json({"x": [None, bad]})
    assert (
        reencode_parsed({"x": bad}) == b'{"x":null}'
    )  # only for values parsed from bytes: never equal to them


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(b'{"body":{"x":NaN},"kind":"verdict","seq":0,"time":"t"}', id="nan"),
        pytest.param(b'{"body":{"x":1e999},"kind":"verdict","seq":0,"time":"t"}', id="overflow"),
        pytest.param(b'{"body":{"x":1e-05},"kind":"verdict","seq":0,"time":"t"}', id="json-float-ok"),
        pytest.param(b'{"body":{"x":1e-5},"kind":"verdict","seq":0,"time":"t"}', id="orjson-float"),
        pytest.param(b'{"body":{"x":0.00001},"kind":"verdict","seq":0,"time":"t"}', id="fixed-small-float"),
        pytest.param(b'{"body":{"x":"\x7f"},"kind":"verdict","seq":0,"time":"t"}', id="raw-del"),
        pytest.param(b'{"body":{"x":"\\u007f"},"kind":"verdict","seq":0,"time":"t"}', id="escaped-del"),
    ],
)
def test_decode_judges_like_json_dumps(text: bytes) -> None:
    """Bytes are canonical exactly when json.dumps of their json.loads value gives them back."""
    try:
        expected = plain(json.loads(text)) == text
    except ValueError:
        expected = False
    try:
        Entry.decode(text)
        accepted = True
    except EntryError:
        accepted = False
    assert accepted is expected


def test_worker_leaf_hashes_match_in_process_ones() -> None:
    """Verify's workers return each row's decoding and leaf hash, in order, as one process computes them."""
    rows = [
        StoredEntry(
            i, b"", Entry(i, Kind.VERDICT, "2026-01-01T00:00:00.000000Z", {"i": i, "f": i / 7}).encode()
        )
        for i in range(scan.CHUNK_ROWS + 10)
    ]
    rows.append(StoredEntry(len(rows), b"", b"not json"))
    alone = list(scan.decoded(rows, 1))
    pooled = list(scan.decoded(rows, 2))
    assert pooled == alone
    assert [leaf for _, _, leaf in alone] == [merkle.leaf_hash(row.data) for row in rows]
    assert isinstance(alone[-1][1], str)
