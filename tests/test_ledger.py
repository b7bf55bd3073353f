"""The tamper-evident ledger: RFC 6962 proofs, canonical entries and signed checkpoints.

Storage, tamper detection, durability and the CLI are in tests/test_ledger_store.py, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from sandboxd.ledger import merkle
from sandboxd.ledger.entry import Entry, EntryError, Kind
from sandboxd.ledger.note import Checkpoint, NoteError, Signer, Verifier, key_id
from sandboxd.ledger.query import facets

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
        "review_label",
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


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param({"status": "ok"}, ("ok", None, None, ""), id="run"),
        pytest.param(
            {
                "reason": "vetoed",
                "task_type": "deduction",
                "decision": {
                    "decision": "veto",
                    "findings": [
                        {"rule_id": "b.rule", "severity": "high", "mode": "enforce"},
                        {"rule_id": "a.rule", "severity": "low", "mode": "audit"},
                    ],
                },
            },
            ("vetoed", "veto", "deduction", " a.rule b.rule "),
            id="azr-vetoed",
        ),
        pytest.param(
            {"rule": "tripwire.x", "decision": None}, (None, None, None, " tripwire.x "), id="tripwire"
        ),
        pytest.param({"status": 3, "decision": "nonsense"}, (None, None, None, ""), id="wrong-types"),
    ],
)
def test_facets_are_derived_from_the_body(body: dict[str, object], expected: tuple[object, ...]) -> None:
    """The query columns come from status/reason, the decision, the task type and the rule ids."""
    found = facets(body)
    assert (found.verdict, found.decision, found.task_type, found.rules) == expected
