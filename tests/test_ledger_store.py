"""Ledger storage on SQLite and on a real PostgreSQL: append, verify, proofs, filters, every way of tampering,
concurrent appenders, SIGKILL durability, and the ``sandboxd ledger`` CLI."""

from __future__ import annotations

import base64
import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest
from postgres_server import PostgresServer

from sandboxd.cli import main
from sandboxd.ledger import merkle
from sandboxd.ledger.entry import Entry, Kind, canonical_json
from sandboxd.ledger.note import Signer
from sandboxd.ledger.query import EntryFilter
from sandboxd.ledger.store import EncodedBody, LedgerStore, encode_row
from sandboxd.ledger.stores import LedgerUrlError, open_store, parse_url, redact
from sandboxd.ledger.verify import verify

ORIGIN = "test/ledger"
N = 12


class LedgerDb:
    """One ledger database under test, and the raw SQL access an attacker with database access has."""

    def __init__(self, url: str, key: Path) -> None:
        self.url = url
        self.key = key
        self.scheme = parse_url(url)[0]

    def open(self, *, signed: bool = True) -> LedgerStore:
        signer = Signer.from_file(ORIGIN, self.key) if signed else None
        return open_store(self.url, origin=ORIGIN, signer=signer)

    def sql(self, *statements: tuple[str, tuple[object, ...]]) -> None:
        """Run statements (``?`` placeholders) in one transaction, behind sandboxd's back."""
        if self.scheme == "sqlite":
            conn = sqlite3.connect(self.url)
            with conn:
                for statement, params in statements:
                    conn.execute(statement, params)
            conn.close()
            return
        with psycopg.connect(self.url) as pg, pg.transaction():
            for statement, params in statements:
                pg.execute(statement.replace("?", "%s"), params or None)  # type: ignore[call-overload]

    def verify(self) -> tuple[int | None, str, bool]:
        store = self.open(signed=False)
        try:
            report = verify(store)
        finally:
            store.close()
        return report.first_bad_seq, report.reason, report.ok


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerDb:
    """An empty ledger database on each backend."""
    if request.param == "sqlite":
        return LedgerDb(str(tmp_path / "ledger.db"), tmp_path / "key")
    server: PostgresServer = request.getfixturevalue("postgres")
    return LedgerDb(server.database(), tmp_path / "key")


@pytest.fixture
def ledger(db: LedgerDb) -> LedgerDb:
    """12 entries with checkpoints at sizes 5 and 12."""
    store = db.open()
    kinds = list(Kind)
    for i in range(N):
        seq, _leaf = store.append(kinds[i % len(kinds)], {"i": i, "text": f"entry {i}"})
        assert seq == i
        if i == 4:
            store.checkpoint()
    store.checkpoint()
    store.close()
    return db


def forged(seq: int) -> tuple[int, bytes, bytes]:
    """A well-formed entry an attacker might insert: a row with a correct leaf hash."""
    data = Entry(seq, Kind.ADMIN_ACTION, "2026-01-01T00:00:00.000000Z", {"forged": True}).encode()
    return seq, merkle.leaf_hash(data), data


def stored_data(store: LedgerStore, seq: int) -> bytes:
    return next(store.entries(seq)).data


# --- append, proofs, filters ----------------------------------------------------------------------------


def test_untampered_ledger_verifies_and_reopens(ledger: LedgerDb) -> None:
    """Entries and both checkpoints check out, and the store reopens at the right size and origin."""
    assert ledger.verify() == (None, "", True)
    store = ledger.open(signed=False)
    try:
        assert store.size() == N
        assert store.origin == ORIGIN
        assert [c.tree_size for c in store.checkpoints()] == [5, N]
        assert [row.seq for row in store.entries(10)] == [10, 11]
    finally:
        store.close()


def test_append_many_is_one_block_of_consecutive_seqs(db: LedgerDb) -> None:
    """A group append returns consecutive seqs whose leaf hashes match the stored canonical bytes."""
    store = db.open()
    try:
        store.append(Kind.VERDICT, {"first": True})
        appended = store.append_many([(Kind.TASK_PROPOSED, {"n": n}) for n in range(5)])
        assert [seq for seq, _ in appended] == [1, 2, 3, 4, 5]
        rows = list(store.entries())
        assert [merkle.leaf_hash(row.data) for row in rows[1:]] == [leaf for _, leaf in appended]
        assert Entry.decode(rows[3].data).body == {"n": 2}
        assert store.append_many([]) == []
    finally:
        store.close()


def test_checkpoint_root_matches_and_proofs_verify(ledger: LedgerDb) -> None:
    """Stored leaf hashes give inclusion and consistency proofs that verify against the signed roots."""
    store = ledger.open(signed=False)
    try:
        five, twelve = store.checkpoints()
        leaves = store.leaf_hashes(N)
    finally:
        store.close()
    assert merkle.root(leaves, 5) == five.root_hash
    assert merkle.root(leaves) == twelve.root_hash
    for seq in range(N):
        path = merkle.inclusion_proof(seq, leaves, N)
        assert merkle.verify_inclusion(seq, N, leaves[seq], path, twelve.root_hash)
    proof = merkle.consistency_proof(5, leaves, N)
    assert merkle.verify_consistency(5, N, five.root_hash, twelve.root_hash, proof)


def test_query_filters_and_pages(db: LedgerDb) -> None:
    """Filters on kind, verdict, decision, rule, task type and time combine; ``after`` pages through."""
    veto = {
        "decision": "veto",
        "findings": [{"rule_id": "dangerous.os_system", "severity": "high", "mode": "enforce"}],
    }
    warn = {
        "decision": "warn",
        "findings": [{"rule_id": "nondeterminism.random", "severity": "low", "mode": "warn"}],
    }
    store = db.open()
    try:
        store.append_many(
            [
                (Kind.VERDICT, {"status": "ok", "decision": None}),
                (Kind.TASK_PROPOSED, {"reason": "vetoed", "task_type": "deduction", "decision": veto}),
                (Kind.ANSWER_CHECKED, {"reason": "ok", "task_type": "induction", "decision": warn}),
                (Kind.TASK_PROPOSED, {"reason": "ok", "task_type": "induction", "decision": None}),
                (Kind.TRIPWIRE, {"rule": "dangerous.os_system"}),
            ]
        )

        def seqs(flt: EntryFilter, after: int = -1, limit: int = 100) -> list[int]:
            return [row.seq for row in store.query(flt, after, limit)]

        assert seqs(EntryFilter()) == [0, 1, 2, 3, 4]
        assert seqs(EntryFilter(kind="task_proposed")) == [1, 3]
        assert seqs(EntryFilter(verdict="ok")) == [0, 2, 3]
        assert seqs(EntryFilter(decision="veto")) == [1]
        assert seqs(EntryFilter(rule="dangerous.os_system")) == [1, 4]
        assert seqs(EntryFilter(rule="dangerous")) == []  # whole rule ids only
        assert seqs(EntryFilter(rule="dangerous.os%")) == []  # no wildcards
        assert seqs(EntryFilter(task_type="induction", kind="task_proposed")) == [3]
        assert seqs(EntryFilter(), after=1, limit=2) == [2, 3]
        assert (
            seqs(EntryFilter(since="2000-01-01T00:00:00.000000Z", until="2001-01-01T00:00:00.000000Z")) == []
        )
        assert seqs(EntryFilter(since="2000-01-01T00:00:00.000000Z")) == [0, 1, 2, 3, 4]
    finally:
        store.close()


def test_store_urls() -> None:
    """Bare paths and sqlite:/// URLs are SQLite files, postgres URLs go to PostgreSQL, others are refused."""
    assert parse_url("var/ledger.db") == ("sqlite", "var/ledger.db")
    assert parse_url("sqlite:///var/ledger.db") == ("sqlite", "var/ledger.db")
    assert parse_url("sqlite:////srv/ledger.db") == ("sqlite", "/srv/ledger.db")
    assert parse_url("postgres://u@h/db") == ("postgresql", "postgres://u@h/db")
    for bad in ("mysql://h/db", "sqlite://", "sqlite:///", ""):
        with pytest.raises(LedgerUrlError):
            parse_url(bad)
    assert redact("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"


# --- tampering ------------------------------------------------------------------------------------------


def test_modified_body_is_named(ledger: LedgerDb) -> None:
    """Editing an entry's bytes names that entry."""
    store = ledger.open(signed=False)
    data = stored_data(store, 7)
    store.close()
    ledger.sql(("UPDATE entries SET data = ? WHERE seq = 7", (data.replace(b"entry 7", b"entry X"),)))
    seq, reason, ok = ledger.verify()
    assert (seq, ok) == (7, False)
    assert "modified" in reason


def test_modified_body_with_rewritten_leaf_hash_is_caught_by_checkpoint(ledger: LedgerDb) -> None:
    """Rewriting the leaf hash too is caught by the signed checkpoint, which narrows it to 5..11."""
    _, leaf, data = forged(7)
    ledger.sql(("UPDATE entries SET data = ?, leaf_hash = ? WHERE seq = 7", (data, leaf)))
    seq, reason, ok = ledger.verify()
    assert (seq, ok) == (5, False)
    assert "5..11" in reason


def test_deleted_entry_is_named(ledger: LedgerDb) -> None:
    """Deleting a row names the missing seq."""
    ledger.sql(("DELETE FROM entries WHERE seq = 4", ()))
    seq, reason, _ = ledger.verify()
    assert seq == 4
    assert "missing" in reason


def test_truncated_tail_is_named(ledger: LedgerDb) -> None:
    """Deleting the last row is caught by the checkpoint that covers it."""
    ledger.sql(("DELETE FROM entries WHERE seq = ?", (N - 1,)))
    seq, reason, _ = ledger.verify()
    assert seq == N - 1
    assert "missing" in reason


def test_inserted_entry_with_shifted_seqs_is_named(ledger: LedgerDb) -> None:
    """Inserting a forged entry at 6 and shifting later rows up names seq 6."""
    shift = [(f"UPDATE entries SET seq = {s + 1} WHERE seq = {s}", ()) for s in range(N - 1, 5, -1)]
    ledger.sql(*shift, ("INSERT INTO entries (seq, leaf_hash, data) VALUES (?, ?, ?)", forged(6)))
    seq, reason, _ = ledger.verify()
    assert seq == 6
    assert "inserted" in reason


def test_inserted_duplicate_is_named(ledger: LedgerDb) -> None:
    """Appending a copy of entry 3 (duplicate seq inside the bytes) names the copy's position."""
    ledger.sql(
        (
            "INSERT INTO entries (seq, leaf_hash, data) SELECT ?, leaf_hash, data FROM entries WHERE seq = 3",
            (N,),
        )
    )
    seq, reason, _ = ledger.verify()
    assert seq == N
    assert "copy of entry 3" in reason


def test_reordered_entries_are_named(ledger: LedgerDb) -> None:
    """Swapping the seqs of rows 3 and 8 names seq 3."""
    ledger.sql(
        ("UPDATE entries SET seq = -1 WHERE seq = 3", ()),
        ("UPDATE entries SET seq = 3 WHERE seq = 8", ()),
        ("UPDATE entries SET seq = 8 WHERE seq = -1", ()),
    )
    seq, reason, _ = ledger.verify()
    assert seq == 3
    assert "reordered" in reason


def test_forged_checkpoint_fails(ledger: LedgerDb) -> None:
    """A checkpoint whose note was edited fails its signature check."""
    ledger.sql(
        (
            "UPDATE checkpoints SET note = replace(note, '\n12\n', '\n11\n'), tree_size = 11 WHERE tree_size = 12",
            (),
        )
    )
    seq, reason, ok = ledger.verify()
    assert (seq, ok) == (None, False)
    assert "bad signature" in reason


# --- concurrency and durability -------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import random, sys
    from pathlib import Path
    from sandboxd.ledger.entry import Kind
    from sandboxd.ledger.note import Signer
    from sandboxd.ledger.stores import open_store

    url, key, tag, rounds = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    store = open_store(url, origin="test/ledger", signer=Signer.from_file("test/ledger", key))
    rng = random.Random(tag)
    i = 0
    for r in range(rounds):
        items = [(Kind.VERDICT, {"writer": tag, "i": i + k, "pad": "x" * 200}) for k in range(rng.randint(1, 4))]
        i += len(items)
        for seq, _ in store.append_many(items):
            print(seq, flush=True)
        if r % 10 == 9:
            store.checkpoint()
    store.close()
    """
)


def _writer(db: LedgerDb, tag: str, rounds: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, db.url, str(db.key), tag, str(rounds)],
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_concurrent_appenders_make_a_gap_free_verifiable_log(db: LedgerDb) -> None:
    """Two processes appending groups and checkpointing at once leave seqs 0..n-1, each writer in order."""
    db.open().close()  # create the schema and the key before the writers race for them
    writers = [_writer(db, tag, 60) for tag in ("a", "b")]
    acknowledged: list[int] = []
    for proc in writers:
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0
        acknowledged += [int(line) for line in out.split()]
    store = db.open(signed=False)
    try:
        rows = [Entry.decode(row.data) for row in store.entries()]
        report = verify(store)
    finally:
        store.close()
    assert sorted(acknowledged) == [entry.seq for entry in rows] == list(range(len(rows)))
    for tag in ("a", "b"):
        mine = [entry.body["i"] for entry in rows if entry.body["writer"] == tag]
        assert mine == list(range(len(mine)))
    assert report.ok, report.reason
    assert report.checkpoints == 12


@pytest.mark.slow
def test_sigkill_keeps_every_acknowledged_entry(db: LedgerDb) -> None:
    """Entries acknowledged before a SIGKILL are all present after reopening, and the log verifies."""
    proc = _writer(db, "k", 1_000_000)
    assert proc.stdout is not None
    acknowledged = [int(proc.stdout.readline()) for _ in range(150)]
    proc.send_signal(signal.SIGKILL)
    acknowledged += [int(line) for line in proc.stdout.read().split()]
    proc.stdout.close()
    assert proc.wait() == -signal.SIGKILL
    store = db.open(signed=False)
    try:
        present = {row.seq for row in store.entries()}
        assert set(acknowledged) <= present
        report = verify(store)
    finally:
        store.close()
    assert report.ok, report.reason
    assert report.checkpoints >= 3


# --- CLI ------------------------------------------------------------------------------------------------


def test_cli_verify_ok_and_bad(ledger: LedgerDb, capsys: pytest.CaptureFixture[str]) -> None:
    """``ledger verify`` exits 0 on a good log and 1 naming the first bad entry on a tampered one."""
    key = ledger.key.with_name("key.pub")
    assert main(["ledger", "verify", "--db", ledger.url, "--key", str(key)]) == 0
    assert "ok: 12 entries, 2 checkpoints" in capsys.readouterr().out
    ledger.sql(("DELETE FROM entries WHERE seq = 2", ()))
    assert main(["ledger", "verify", "--db", ledger.url]) == 1
    assert "first bad entry 2:" in capsys.readouterr().err


def test_cli_verify_rejects_another_key(ledger: LedgerDb, capsys: pytest.CaptureFixture[str]) -> None:
    """A pinned key that did not sign the checkpoints fails verification."""
    Signer.from_file(ORIGIN, ledger.key.with_name("other"))
    assert (
        main(["ledger", "verify", "--db", ledger.url, "--key", str(ledger.key.with_name("other.pub"))]) == 1
    )
    assert "no signature" in capsys.readouterr().err


def test_cli_export_writes_canonical_jsonl(ledger: LedgerDb, capsys: pytest.CaptureFixture[str]) -> None:
    """``ledger export`` prints one canonical entry per line, in seq order."""
    assert main(["ledger", "export", "--db", ledger.url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(N))
    assert all(canonical_json(json.loads(line)) == line.encode() for line in lines)


def test_cli_proof_verifies(ledger: LedgerDb, capsys: pytest.CaptureFixture[str]) -> None:
    """``ledger proof`` prints an inclusion proof that verifies against the checkpointed root."""
    assert main(["ledger", "proof", "--db", ledger.url, "--seq", "3", "--size", "5"]) == 0
    proof = json.loads(capsys.readouterr().out)
    store = ledger.open(signed=False)
    checkpoint = store.checkpoints()[0]
    store.close()
    path = [base64.b64decode(h) for h in proof["audit_path"]]
    leaf, root = base64.b64decode(proof["leaf_hash"]), base64.b64decode(proof["root_hash"])
    assert (proof["tree_size"], root) == (5, checkpoint.root_hash)
    assert merkle.verify_inclusion(3, 5, leaf, path, root)


def test_cli_consistency_proof_verifies(ledger: LedgerDb, capsys: pytest.CaptureFixture[str]) -> None:
    """``ledger proof --first`` prints a consistency proof between the two checkpointed trees."""
    assert main(["ledger", "proof", "--db", ledger.url, "--first", "5", "--size", "12"]) == 0
    proof = json.loads(capsys.readouterr().out)
    store = ledger.open(signed=False)
    five, twelve = store.checkpoints()
    store.close()
    assert base64.b64decode(proof["first_root"]) == five.root_hash
    nodes = [base64.b64decode(h) for h in proof["proof"]]
    assert merkle.verify_consistency(5, 12, five.root_hash, twelve.root_hash, nodes)
    assert main(["ledger", "proof", "--db", ledger.url, "--first", "13"]) == 2


def test_cli_rejects_missing_db_and_bad_seq(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing database, a bad URL or an out-of-range seq exits 2 without creating anything."""
    missing = tmp_path / "nope.db"
    assert main(["ledger", "export", "--db", str(missing)]) == 2
    assert main(["ledger", "verify", "--db", f"sqlite:///{missing}"]) == 2
    assert not missing.exists()
    assert main(["ledger", "export", "--db", "mysql://h/db"]) == 2
    db = LedgerDb(str(tmp_path / "ledger.db"), tmp_path / "key")
    db.open().close()
    assert main(["ledger", "proof", "--db", db.url, "--seq", "0"]) == 2
    assert "need" in capsys.readouterr().err


BODIES = [
    {},
    {"verdict": "correct", "reward": 1.0, "usage": {"cpu_time_seconds": 0.002, "wall_time_seconds": 0.007}},
    {
        "answer": "d\u00e9j\u00e0 vu \u2603 \ud83d\ude00",
        "nested": [{"b": 1, "a": [None, True, -0.0]}],
        "z": 10**30,
    },
    {"text": 'quote " backslash \\ newline \n tab \t del \x7f nul \x00', "big": 1e-7, "small": 123456789.0},
    {
        "decision": {"rules": ["r1", "r2"], "decision": "veto"},
        "task_type": "induction",
        "program_sha256": "ab" * 32,
    },
]


@pytest.mark.parametrize("body", BODIES)
def test_encoded_body_gives_the_same_entry_bytes(body: dict[str, Any]) -> None:
    """The body's bytes, made once at append (EncodedBody) and spliced in, are exactly the entry's encoding."""
    stamp = "2026-12-03T03:57:06.123456Z"
    for seq in (0, 7, 123_456_789):
        for kind in Kind:
            spliced = encode_row(seq, kind, EncodedBody(body), stamp)
            plain = encode_row(seq, kind, body, stamp)
            assert spliced == plain
            assert spliced[2] == Entry(seq, kind, stamp, dict(body)).encode()
            assert spliced[2] == canonical_json({"seq": seq, "kind": kind.value, "time": stamp, "body": body})


def test_a_body_that_cannot_be_encoded_fails_when_it_is_wrapped() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        EncodedBody({"reward": float("nan")})
    with pytest.raises(TypeError, match="not JSON serializable"):
        EncodedBody({"value": object()})
