"""The tamper-evident ledger: RFC 6962 proofs, canonical entries, signed checkpoints, tamper detection, CLI."""

from __future__ import annotations

import base64
import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sandboxd.cli import main
from sandboxd.ledger import merkle
from sandboxd.ledger.entry import Entry, EntryError, Kind, canonical_json
from sandboxd.ledger.note import Checkpoint, NoteError, Signer, Verifier, key_id
from sandboxd.ledger.sqlite import SqliteLedgerStore
from sandboxd.ledger.verify import verify

SIZES = range(1, 21)
LEAVES = [merkle.leaf_hash(b"leaf %d" % i) for i in range(20)]
ALTERED = [merkle.leaf_hash(b"altered"), *LEAVES[1:]]  # the same tree with leaf 0 changed


def reference_root(data: list[bytes]) -> bytes:
    """RFC 6962 MTH written directly over leaf data, as an independent oracle."""
    if not data:
        return merkle.hashlib.sha256(b"").digest()
    if len(data) == 1:
        return merkle.hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < len(data):
        k *= 2
    return merkle.hashlib.sha256(b"\x01" + reference_root(data[:k]) + reference_root(data[k:])).digest()


def flip(proof: list[bytes], i: int) -> list[bytes]:
    """The proof with one bit of node ``i`` flipped."""
    return [bytes([h[0] ^ 1]) + h[1:] if j == i else h for j, h in enumerate(proof)]


# --- merkle ---------------------------------------------------------------------------------------------


def test_root_matches_reference_for_small_trees() -> None:
    """The tree hash equals the RFC 6962 definition, and the compact range agrees at every size."""
    data = [b"leaf %d" % i for i in range(64)]
    leaves = [merkle.leaf_hash(d) for d in data]
    compact = merkle.CompactRange()
    assert compact.root() == merkle.EMPTY_ROOT == merkle.root([])
    for n in range(1, 65):
        compact.append(leaves[n - 1])
        assert merkle.root(leaves, n) == reference_root(data[:n]) == compact.root()


def test_rfc6962_known_answer() -> None:
    """The root of the one-leaf tree over the empty string is SHA-256 of a zero byte (RFC 6962 test vector)."""
    expected = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert merkle.root([merkle.leaf_hash(b"")]).hex() == expected


def test_every_inclusion_proof_verifies_and_tampering_fails() -> None:
    """For all n <= 20 and every index, the audit path verifies; a flipped node, wrong index or root fails."""
    for n in SIZES:
        root = merkle.root(LEAVES, n)
        for i in range(n):
            proof = merkle.inclusion_proof(i, LEAVES, n)
            assert merkle.verify_inclusion(i, n, LEAVES[i], proof, root)
            for j in range(len(proof)):
                assert not merkle.verify_inclusion(i, n, LEAVES[i], flip(proof, j), root)
            assert not merkle.verify_inclusion(i, n, LEAVES[i], proof[:-1], root) or not proof
            assert not merkle.verify_inclusion(i, n, LEAVES[i], [*proof, root], root)
            assert not merkle.verify_inclusion(i, n, LEAVES[(i + 1) % 20], proof, root)
            assert not merkle.verify_inclusion(i, n, LEAVES[i], proof, LEAVES[i] if n > 1 else LEAVES[1])
            assert not merkle.verify_inclusion(n, n, LEAVES[i], proof, root)


def test_every_consistency_proof_verifies_and_tampering_fails() -> None:
    """For all m <= n <= 20 the consistency proof verifies; a flipped node or a wrong root fails."""
    for n in SIZES:
        new_root = merkle.root(LEAVES, n)
        for m in range(n + 1):
            old_root = merkle.root(LEAVES, m)
            proof = merkle.consistency_proof(m, LEAVES, n)
            assert merkle.verify_consistency(m, n, old_root, new_root, proof)
            for j in range(len(proof)):
                assert not merkle.verify_consistency(m, n, old_root, new_root, flip(proof, j))
            if m == 0:
                continue
            bad_old = merkle.root(ALTERED, m)
            assert not merkle.verify_consistency(m, n, bad_old, new_root, proof)
            assert not merkle.verify_consistency(m, n, old_root, merkle.root(ALTERED, n), proof)
            if m < n:
                assert not merkle.verify_consistency(m, n, old_root, new_root, proof[:-1])


def test_proof_builders_reject_out_of_range_sizes() -> None:
    """Asking for a leaf or size beyond the tree is a caller fault."""
    with pytest.raises(ValueError, match="index"):
        merkle.inclusion_proof(3, LEAVES, 3)
    with pytest.raises(ValueError, match="old size"):
        merkle.consistency_proof(5, LEAVES, 4)


# --- entries and notes ----------------------------------------------------------------------------------


def test_canonical_encoding_is_sorted_compact_ascii() -> None:
    """Keys are sorted, there is no whitespace, and non-ASCII is escaped."""
    entry = Entry(3, Kind.VERDICT, "2026-01-01T00:00:00.000000Z", {"b": 1, "a": "é"})
    expected = b'{"body":{"a":"\\u00e9","b":1},"kind":"verdict","seq":3,"time":"2026-01-01T00:00:00.000000Z"}'
    assert entry.encode() == expected
    assert Entry.decode(expected) == entry


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b'{"body":{},"kind":"verdict","seq":0, "time":"t"}', id="whitespace"),
        pytest.param(b'{"kind":"verdict","body":{},"seq":0,"time":"t"}', id="unsorted"),
        pytest.param(b'{"body":{},"kind":"bogus","seq":0,"time":"t"}', id="unknown-kind"),
        pytest.param(b'{"body":{},"kind":"verdict","seq":-1,"time":"t"}', id="negative-seq"),
        pytest.param(b'{"body":{},"kind":"verdict","seq":0}', id="missing-field"),
        pytest.param(b"not json", id="not-json"),
    ],
)
def test_decode_rejects_non_canonical_entries(data: bytes) -> None:
    """Only the exact canonical bytes of a well-formed entry decode."""
    with pytest.raises(EntryError):
        Entry.decode(data)


def test_every_kind_is_listed() -> None:
    """The kinds cover every event source named in issue 5."""
    assert {k.value for k in Kind} == {
        "task_proposed",
        "answer_checked",
        "verdict",
        "watchdog_decision",
        "tripwire",
        "throttle_change",
        "policy_change",
        "admin_action",
    }


def test_signed_note_round_trip_and_format(tmp_path: Path) -> None:
    """A checkpoint note has the C2SP layout, verifies with the vkey, and fails when edited or under another key."""
    signer = Signer.from_file("example.org/log", tmp_path / "key")
    head = Checkpoint("example.org/log", 7, bytes(range(32)))
    note = signer.sign(head.body())
    body, sig_line = note.split("\n\n")
    assert (
        body + "\n" == head.body() == f"example.org/log\n7\n{base64.b64encode(bytes(range(32))).decode()}\n"
    )
    dash, name, sig = sig_line.rstrip("\n").split(" ")
    assert (dash, name) == ("\u2014", "example.org/log")
    raw = base64.b64decode(sig)
    assert raw[:4] == key_id("example.org/log", signer.verifier.public_key)
    assert len(raw) == 68
    verifier = Verifier.parse((tmp_path / "key.pub").read_text())
    assert Checkpoint.parse(verifier.verify(note)) == head
    with pytest.raises(NoteError, match="bad signature"):
        verifier.verify(note.replace("\n7\n", "\n8\n"))
    other = Signer.from_file("example.org/log", tmp_path / "other").verifier
    with pytest.raises(NoteError, match="no signature"):
        other.verify(note)
    assert Signer.from_file("example.org/log", tmp_path / "key").verifier == verifier  # the key is reused


# --- the SQLite store and verify ------------------------------------------------------------------------

N = 12


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    """A ledger of 12 entries with checkpoints at sizes 5 and 12; returns the database path."""
    db = tmp_path / "ledger.db"
    store = SqliteLedgerStore(
        db, origin="test/ledger", signer=Signer.from_file("test/ledger", tmp_path / "key")
    )
    kinds = list(Kind)
    for i in range(N):
        seq, _leaf = store.append(kinds[i % len(kinds)], {"i": i, "text": f"entry {i}"})
        assert seq == i
        if i == 4:
            store.checkpoint()
    store.checkpoint()
    store.close()
    return db


def tamper(db: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    """Run SQL directly against the database, as an attacker with file access would."""
    conn = sqlite3.connect(db)
    with conn:
        for sql, params in statements:
            conn.execute(sql, params)
    conn.close()


def verify_db(db: Path) -> tuple[int | None, str, bool]:
    """Open the database, verify it and return (first bad seq, reason, ok)."""
    store = SqliteLedgerStore(db)
    try:
        report = verify(store)
    finally:
        store.close()
    return report.first_bad_seq, report.reason, report.ok


def forged(seq: int) -> tuple[int, bytes, bytes]:
    """A well-formed entry an attacker might insert: a row with a correct leaf hash."""
    data = Entry(seq, Kind.ADMIN_ACTION, "2026-01-01T00:00:00.000000Z", {"forged": True}).encode()
    return seq, merkle.leaf_hash(data), data


def test_untampered_ledger_verifies(ledger: Path) -> None:
    """Entries and both checkpoints check out, and the store reopens at the right size."""
    assert verify_db(ledger) == (None, "", True)
    store = SqliteLedgerStore(ledger)
    assert store.size() == N
    assert [c.tree_size for c in store.checkpoints()] == [5, N]
    store.close()


def test_modified_body_is_named(ledger: Path) -> None:
    """Editing an entry's bytes names that entry."""
    tamper(ledger, ("UPDATE entries SET data = replace(data, 'entry 7', 'entry X') WHERE seq = 7", ()))
    assert verify_db(ledger)[:1] == (7,)
    assert "modified" in verify_db(ledger)[1]


def test_modified_body_with_rewritten_leaf_hash_is_caught_by_checkpoint(ledger: Path) -> None:
    """Rewriting the leaf hash too is caught by the signed checkpoint, which narrows it to 5..11."""
    _, leaf, data = forged(7)
    tamper(ledger, ("UPDATE entries SET data = ?, leaf_hash = ? WHERE seq = 7", (data, leaf)))
    seq, reason, ok = verify_db(ledger)
    assert (seq, ok) == (5, False)
    assert "5..11" in reason


def test_deleted_entry_is_named(ledger: Path) -> None:
    """Deleting a row names the missing seq."""
    tamper(ledger, ("DELETE FROM entries WHERE seq = 4", ()))
    seq, reason, _ = verify_db(ledger)
    assert seq == 4
    assert "missing" in reason


def test_truncated_tail_is_named(ledger: Path) -> None:
    """Deleting the last row is caught by the checkpoint that covers it."""
    tamper(ledger, ("DELETE FROM entries WHERE seq = ?", (N - 1,)))
    seq, reason, _ = verify_db(ledger)
    assert seq == N - 1
    assert "missing" in reason


def test_inserted_entry_with_shifted_seqs_is_named(ledger: Path) -> None:
    """Inserting a forged entry at 6 and shifting later rows up names seq 6."""
    shift = [(f"UPDATE entries SET seq = {s + 1} WHERE seq = {s}", ()) for s in range(N - 1, 5, -1)]
    tamper(ledger, *shift, ("INSERT INTO entries VALUES (?, ?, ?)", forged(6)))
    seq, reason, _ = verify_db(ledger)
    assert seq == 6
    assert "inserted" in reason


def test_inserted_duplicate_is_named(ledger: Path) -> None:
    """Appending a copy of entry 3 (duplicate seq inside the bytes) names the copy's position."""
    tamper(ledger, ("INSERT INTO entries SELECT ?, leaf_hash, data FROM entries WHERE seq = 3", (N,)))
    seq, reason, _ = verify_db(ledger)
    assert seq == N
    assert "copy of entry 3" in reason


def test_reordered_entries_are_named(ledger: Path) -> None:
    """Swapping the seqs of rows 3 and 8 names seq 3."""
    tamper(
        ledger,
        ("UPDATE entries SET seq = -1 WHERE seq = 3", ()),
        ("UPDATE entries SET seq = 3 WHERE seq = 8", ()),
        ("UPDATE entries SET seq = 8 WHERE seq = -1", ()),
    )
    seq, reason, _ = verify_db(ledger)
    assert seq == 3
    assert "reordered" in reason


def test_forged_checkpoint_fails(ledger: Path) -> None:
    """A checkpoint whose note was edited fails its signature check."""
    tamper(
        ledger,
        (
            "UPDATE checkpoints SET note = replace(note, '\n12\n', '\n11\n'), tree_size = 11 WHERE tree_size = 12",
            (),
        ),
    )
    seq, reason, ok = verify_db(ledger)
    assert (seq, ok) == (None, False)
    assert "bad signature" in reason


# --- durability -----------------------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from sandboxd.ledger.entry import Kind
    from sandboxd.ledger.note import Signer
    from sandboxd.ledger.sqlite import SqliteLedgerStore

    db, key = Path(sys.argv[1]), Path(sys.argv[2])
    store = SqliteLedgerStore(db, origin="test/ledger", signer=Signer.from_file("test/ledger", key))
    for i in range(1_000_000):
        seq, _ = store.append(Kind.VERDICT, {"i": i, "pad": "x" * 200})
        print(seq, flush=True)
        if i % 25 == 24:
            store.checkpoint()
    """
)


@pytest.mark.slow
def test_sigkill_keeps_every_acknowledged_entry(tmp_path: Path) -> None:
    """Entries acknowledged before a SIGKILL are all present after reopening, and the log verifies."""
    db = tmp_path / "ledger.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), str(tmp_path / "key")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acknowledged = [int(proc.stdout.readline()) for _ in range(200)]
    proc.send_signal(signal.SIGKILL)
    acknowledged += [int(line) for line in proc.stdout.read().split()]
    proc.stdout.close()
    assert proc.wait() == -signal.SIGKILL
    store = SqliteLedgerStore(db)
    try:
        present = {row.seq for row in store.entries()}
        assert set(acknowledged) <= present
        report = verify(store)
    finally:
        store.close()
    assert report.ok, report.reason
    assert report.checkpoints >= 7


# --- CLI ------------------------------------------------------------------------------------------------


def test_cli_verify_ok_and_bad(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``ledger verify`` exits 0 on a good log and 1 naming the first bad entry on a tampered one."""
    key = ledger.parent / "key.pub"
    assert main(["ledger", "verify", "--db", str(ledger), "--key", str(key)]) == 0
    assert "ok: 12 entries, 2 checkpoints" in capsys.readouterr().out
    tamper(ledger, ("DELETE FROM entries WHERE seq = 2", ()))
    assert main(["ledger", "verify", "--db", str(ledger)]) == 1
    assert "first bad entry 2:" in capsys.readouterr().err


def test_cli_verify_rejects_another_key(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A pinned key that did not sign the checkpoints fails verification."""
    other = Signer.from_file("test/ledger", ledger.parent / "other")
    assert main(["ledger", "verify", "--db", str(ledger), "--key", str(ledger.parent / "other.pub")]) == 1
    assert "no signature" in capsys.readouterr().err
    assert other.verifier.public_key


def test_cli_export_writes_canonical_jsonl(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``ledger export`` prints one canonical entry per line, in seq order."""
    assert main(["ledger", "export", "--db", str(ledger)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(N))
    assert all(canonical_json(json.loads(line)) == line.encode() for line in lines)


def test_cli_proof_verifies(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``ledger proof`` prints an inclusion proof that verifies against the checkpointed root."""
    assert main(["ledger", "proof", "--db", str(ledger), "--seq", "3", "--size", "5"]) == 0
    proof = json.loads(capsys.readouterr().out)
    store = SqliteLedgerStore(ledger)
    checkpoint = store.checkpoints()[0]
    store.close()
    path = [base64.b64decode(h) for h in proof["audit_path"]]
    leaf, root = base64.b64decode(proof["leaf_hash"]), base64.b64decode(proof["root_hash"])
    assert (proof["tree_size"], root) == (5, checkpoint.root_hash)
    assert merkle.verify_inclusion(3, 5, leaf, path, root)


def test_cli_rejects_missing_db_and_bad_seq(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing database or an out-of-range seq exits 2 without creating anything."""
    missing = ledger.parent / "nope.db"
    assert main(["ledger", "export", "--db", str(missing)]) == 2
    assert not missing.exists()
    assert main(["ledger", "proof", "--db", str(ledger), "--seq", "12"]) == 2
    assert "need" in capsys.readouterr().err
