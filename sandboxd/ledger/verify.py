"""Recompute a ledger from its stored bytes and check every checkpoint against it.

Trust nothing the store says except the canonical entry bytes and the signed notes. For each row, in seq
order, the checks are: the seq column is the leaf index (else an entry is missing), the bytes hash to the
stored leaf hash (else the entry was modified), the bytes are a canonical entry, and the entry's own seq is
the leaf index (a smaller one means an inserted duplicate; a larger one means rows were reordered). Then
every checkpoint must be signed by the ledger's key, agree with its columns, and match the root recomputed
from the entry bytes; a mismatch means an entry below its size changed even if its leaf hash was rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import merkle
from .entry import Entry, EntryError
from .note import Checkpoint, NoteError, Verifier
from .store import LedgerStore, StoredEntry


@dataclass(frozen=True)
class Report:
    """The outcome: ``ok``, or the first bad entry seq (when one can be named) and the reason."""

    ok: bool
    entries: int
    checkpoints: int
    first_bad_seq: int | None = None
    reason: str = ""


def check_entry(index: int, row: StoredEntry, leaves: list[bytes]) -> tuple[int, str] | None:
    """The first bad seq and why, if the row at ``index`` is not entry ``index``; ``leaves`` are those before it."""
    if row.seq != index:
        return index, f"entry {index} is missing (the next stored seq is {row.seq})"
    if merkle.leaf_hash(row.data) != row.leaf_hash:
        return index, f"entry {index} was modified: its bytes do not match its leaf hash"
    try:
        entry = Entry.decode(row.data)
    except EntryError as exc:
        return index, f"entry {index} is not a canonical entry: {exc}"
    if entry.seq < index and leaves[entry.seq] == row.leaf_hash:
        return index, f"entry {index} is a copy of entry {entry.seq}: an entry was inserted"
    if entry.seq < index:
        return entry.seq, f"entry {entry.seq} appears again at position {index}: an entry was inserted"
    if entry.seq > index:
        return index, f"entry {index} holds entry {entry.seq}: entries were reordered"
    return None


def verify(store: LedgerStore, verifier: Verifier | None = None) -> Report:
    """Check every entry and checkpoint of ``store``; ``verifier`` defaults to the key the store recorded."""
    leaves: list[bytes] = []
    bad: tuple[int, str] | None = None
    for index, row in enumerate(store.entries()):
        if bad is None:
            bad = check_entry(index, row, leaves)
        leaves.append(merkle.leaf_hash(row.data))
    checkpoints = store.checkpoints()
    if verifier is None and checkpoints:
        vkey = store.vkey()
        if vkey is None:
            return Report(
                False, len(leaves), len(checkpoints), None, "checkpoints exist but no key is recorded"
            )
        verifier = Verifier.parse(vkey)
    confirmed = 0  # entries below this size are fixed by a checkpoint that matched
    for number, cp in sorted(enumerate(checkpoints), key=lambda item: item[1].tree_size):
        assert verifier is not None
        try:
            head = Checkpoint.parse(verifier.verify(cp.note))
        except NoteError as exc:
            return Report(False, len(leaves), len(checkpoints), None, f"checkpoint {number}: {exc}")
        if (head.origin, head.size, head.root_hash) != (store.origin, cp.tree_size, cp.root_hash):
            reason = f"checkpoint {number}: its columns disagree with its signed note"
            return Report(False, len(leaves), len(checkpoints), None, reason)
        found = _check_root(number, head, leaves, confirmed)
        if found is None:
            confirmed = head.size
        elif bad is None or bad[0] >= head.size:  # a bad entry below head.size already explains it
            bad = found
    if bad is not None:
        return Report(False, len(leaves), len(checkpoints), bad[0], bad[1])
    return Report(True, len(leaves), len(checkpoints))


def _check_root(number: int, head: Checkpoint, leaves: list[bytes], confirmed: int) -> tuple[int, str] | None:
    """The first bad seq and why, if the signed ``head`` does not match the recomputed tree."""
    if head.size > len(leaves):
        return len(leaves), f"entry {len(leaves)} is missing: checkpoint {number} covers {head.size} entries"
    if merkle.root(leaves, head.size) != head.root_hash:
        # A root mismatch cannot be pinned to one entry; name the first entry no matching checkpoint fixes.
        reason = f"an entry in {confirmed}..{head.size - 1} was changed: checkpoint {number} does not match"
        return confirmed, reason
    return None
