"""Verification at scale: the streaming pass, decoding in worker processes, and the fast JSON parse, each
shown to reach exactly the verdicts of the plain single-process path on every kind of tampering."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from postgres_server import PostgresServer

from sandboxd.ledger import entry as entry_module
from sandboxd.ledger import merkle, scan
from sandboxd.ledger.entry import Entry, EntryError, Kind
from sandboxd.ledger.note import Checkpoint, Signer
from sandboxd.ledger.postgres import PostgresLedgerStore
from sandboxd.ledger.sqlite import SqliteLedgerStore
from sandboxd.ledger.verify import Report, verify

ORIGIN = "test/ledger-scale"
N = 40
EVERY = 7  # a checkpoint every 7 entries, and one at the end


def build(path: Path) -> None:
    store = SqliteLedgerStore(path, origin=ORIGIN, signer=Signer.from_file(ORIGIN, path.with_suffix(".key")))
    for i in range(N):
        store.append(Kind.VERDICT, {"i": i, "code": f"def f(x):\n    return x + {i}\n"})
        if (i + 1) % EVERY == 0:
            store.checkpoint()
    store.checkpoint()
    store.close()


def forged(seq: int, body: str = '{"forged":true}') -> tuple[bytes, bytes]:
    """Entry bytes with ``body`` spliced in as written (so it may be non-canonical), and their leaf hash."""
    data = (
        f'{{"body":{body},"kind":"admin_action","seq":{seq},"time":"2026-01-01T00:00:00.000000Z"}}'.encode()
    )
    return data, merkle.leaf_hash(data)


def _sql(*statements: str | tuple[str, tuple[object, ...]]) -> Callable[[Path], None]:
    def run(path: Path) -> None:
        conn = sqlite3.connect(path)
        with conn:
            for statement in statements:
                sql, params = (statement, ()) if isinstance(statement, str) else statement
                conn.execute(sql, params)
        conn.close()

    return run


def _replace(seq: int, body: str, *, rehash: bool) -> Callable[[Path], None]:
    data, leaf = forged(seq, body)
    if rehash:
        return _sql(("UPDATE entries SET data = ?, leaf_hash = ? WHERE seq = ?", (data, leaf, seq)))
    return _sql(("UPDATE entries SET data = ? WHERE seq = ?", (data, seq)))


TAMPERING = [
    pytest.param(_sql(), None, "", id="untouched"),
    pytest.param(_replace(9, '{"forged":true}', rehash=False), 9, "modified", id="modified"),
    pytest.param(_replace(30, '{"forged":true}', rehash=True), 28, "28..34", id="modified-and-rehashed"),
    pytest.param(_sql("DELETE FROM entries WHERE seq = 11"), 11, "missing", id="deleted"),
    pytest.param(_sql(f"DELETE FROM entries WHERE seq = {N - 1}"), N - 1, "missing", id="truncated"),
    pytest.param(
        _sql(
            *[f"UPDATE entries SET seq = {s + 1} WHERE seq = {s}" for s in range(N - 1, 19, -1)],
            ("INSERT INTO entries (seq, leaf_hash, data) VALUES (20, ?, ?)", forged(20)[::-1]),
        ),
        20,
        "inserted",
        id="inserted-and-shifted",
    ),
    pytest.param(
        _sql(
            f"INSERT INTO entries (seq, leaf_hash, data) SELECT {N}, leaf_hash, data FROM entries WHERE seq = 3"
        ),
        N,
        "copy of entry 3",
        id="duplicated",
    ),
    pytest.param(
        _sql(
            "UPDATE entries SET seq = -1 WHERE seq = 5",
            "UPDATE entries SET seq = 5 WHERE seq = 25",
            "UPDATE entries SET seq = 25 WHERE seq = -1",
        ),
        5,
        "reordered",
        id="reordered",
    ),
    pytest.param(_replace(12, '{"a": 1}', rehash=True), 12, "canonical", id="non-canonical-whitespace"),
    pytest.param(_replace(13, '{"x":1e999}', rehash=True), 13, "canonical", id="unencodable-number"),
    pytest.param(_replace(14, '{"x":NaN}', rehash=True), 14, "canonical", id="nan"),
    pytest.param(_replace(15, '{"b":1,"a":2}', rehash=True), 15, "canonical", id="unsorted-keys"),
    pytest.param(_replace(16, '{"a":1,"a":1}', rehash=True), 16, "canonical", id="duplicate-keys"),
]


@pytest.mark.parametrize(("tamper", "first_bad", "words"), TAMPERING)
def test_parallel_verify_names_the_same_first_bad_entry(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tamper: Callable[[Path], None],
    first_bad: int | None,
    words: str,
) -> None:
    """Decoding in worker processes (in many small chunks) gives the single-process report, naming the entry."""
    path = tmp_path / "ledger.db"
    build(path)
    tamper(path)
    monkeypatch.setattr(scan, "CHUNK_ROWS", 3)
    store = SqliteLedgerStore(path)
    try:
        reports: list[Report] = [verify(store, workers=workers) for workers in (1, 2)]
    finally:
        store.close()
    assert reports[0] == reports[1]
    assert reports[0].first_bad_seq == first_bad
    assert reports[0].ok is (first_bad is None)
    assert words in reports[0].reason
    assert reports[0].checkpoints == N // EVERY + 1


def test_parallel_verify_on_postgresql_keeps_the_connection(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL too, workers give the same report, and the store's connection still works afterwards."""
    monkeypatch.setattr(scan, "CHUNK_ROWS", 5)
    signer = Signer.from_file(ORIGIN, tmp_path / "key")
    store = PostgresLedgerStore(postgres.database(), origin=ORIGIN, signer=signer)
    try:
        store.append_many([(Kind.VERDICT, {"i": i}) for i in range(30)])
        store.checkpoint()
        single, parallel = verify(store, workers=1), verify(store, workers=2)
        assert single == parallel
        assert parallel.ok
        store.append(Kind.ADMIN_ACTION, {"after": "verify"})  # the forked workers left the connection alone
        store.checkpoint()
        assert verify(store, workers=2) == Report(True, 31, 2)
    finally:
        store.close()


def test_every_checkpoint_is_checked(tmp_path: Path) -> None:
    """The one pass checks each checkpoint's root: a forged signed checkpoint anywhere fails verification."""
    path = tmp_path / "ledger.db"
    build(path)
    other = Signer.from_file(ORIGIN, tmp_path / "other.key")
    head = Checkpoint(ORIGIN, 21, merkle.leaf_hash(b"not the root"))
    note = Signer.from_file(ORIGIN, path.with_suffix(".key")).sign(head.body())
    _sql(("UPDATE checkpoints SET root_hash = ?, note = ? WHERE tree_size = 21", (head.root_hash, note)))(
        path
    )
    store = SqliteLedgerStore(path)
    try:
        report = verify(store)
        assert (report.ok, report.first_bad_seq) == (False, 14)
        assert "14..20" in report.reason
        assert not verify(store, other.verifier).ok  # and a pinned key that did not sign them fails too
    finally:
        store.close()


def test_default_workers_stay_in_process_for_small_logs() -> None:
    """Worker processes are used only for logs large enough to repay starting them."""
    assert scan.default_workers(scan.PARALLEL_MIN_ROWS - 1) == 1
    assert scan.default_workers(scan.PARALLEL_MIN_ROWS) >= 1


ENTRY_BYTES = [
    pytest.param(b'{"body":{"n":1180591620717411303424},"kind":"verdict","seq":0,"time":"t"}', id="big-int"),
    pytest.param(b'{"body":{"s":"\\ud800"},"kind":"verdict","seq":0,"time":"t"}', id="lone-surrogate"),
    pytest.param(b'{"body":{"s":"\\ud83d\\ude00\\u00e9"},"kind":"verdict","seq":0,"time":"t"}', id="escapes"),
    pytest.param('{"body":{"s":"é"},"kind":"verdict","seq":0,"time":"t"}'.encode(), id="raw-utf8"),
    pytest.param(
        b'{"body":{"f":1e+16,"g":1.5e-07,"h":0.1},"kind":"verdict","seq":0,"time":"t"}', id="floats"
    ),
    pytest.param(b'{"body":{"f":1e16},"kind":"verdict","seq":0,"time":"t"}', id="float-not-python-form"),
    pytest.param(b'{"body":{"f":1E+16},"kind":"verdict","seq":0,"time":"t"}', id="float-capital-e"),
    pytest.param(b'{"body":{"x":1e999},"kind":"verdict","seq":0,"time":"t"}', id="overflow"),
    pytest.param(b'{"body":{"x":-0.0},"kind":"verdict","seq":0,"time":"t"}', id="negative-zero"),
    pytest.param(b'{"body":{"x":Infinity},"kind":"verdict","seq":0,"time":"t"}', id="infinity"),
    pytest.param(b'\xef\xbb\xbf{"body":{},"kind":"verdict","seq":0,"time":"t"}', id="bom"),
    pytest.param(b'{"body":{},"kind":"verdict","seq":0,"time":"t"} ', id="trailing-space"),
    pytest.param(b'{"body":{"s":"\x1f"},"kind":"verdict","seq":0,"time":"t"}', id="raw-control"),
    pytest.param(b'{"body":{"s":"\\u007f\x7f"},"kind":"verdict","seq":0,"time":"t"}', id="delete-char"),
    pytest.param(b'{"body":{},"kind":"verdict","seq":true,"time":"t"}', id="bool-seq"),
    pytest.param(b'{"body":{},"kind":"verdict","seq":0,"time":"t","x":1}', id="extra-field"),
    pytest.param(b"\xff\xfe{}", id="not-utf8"),
    pytest.param(b"", id="empty"),
]


def _outcome(data: bytes) -> tuple[str, object]:
    try:
        found = Entry.decode(data)
    except EntryError:
        return "rejected", None
    return "accepted", found


@pytest.mark.parametrize("data", ENTRY_BYTES)
def test_fast_parse_agrees_with_the_standard_library(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """``Entry.decode`` accepts and rejects exactly what it would with ``json.loads`` alone, and never crashes."""
    fast = _outcome(data)
    monkeypatch.setattr(entry_module, "_fast_loads", _refuse)
    assert fast == _outcome(data)


def _refuse(data: bytes) -> object:
    raise ValueError("the fast parser is off: json.loads decides alone")


def test_canonical_json_is_json_dumps() -> None:
    """The shared encoder writes what ``json.dumps`` with the canonical options writes."""
    value = {"b": [1, 2.5, None, True], "a": {"z": "é\u2028\x00", "y": 10**30}}
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    assert entry_module.canonical_json(value) == expected.encode()
    with pytest.raises(ValueError, match="Out of range"):
        entry_module.canonical_json({"x": float("nan")})
