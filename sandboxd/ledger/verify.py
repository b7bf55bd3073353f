"""Recompute a ledger from its stored bytes and check every checkpoint against it, in one streaming pass.

Trust nothing the store says except the canonical entry bytes and the signed notes. For each row, in seq
order, the checks are: the seq column is the leaf index (else an entry is missing), the bytes hash to the
stored leaf hash (else the entry was modified), the bytes are a canonical entry, and the entry's own seq is
the leaf index (a smaller one means an inserted duplicate; a larger one means rows were reordered). Then
every checkpoint must be signed by the ledger's key, agree with its columns, and match the root recomputed
from the entry bytes; a mismatch means an entry below its size changed even if its leaf hash was rewritten.

The tree is recomputed once, leaf by leaf, with a compact range (``merkle.CompactRange``): when it reaches
a checkpoint's size, that prefix root is noted, so every checkpoint costs O(log n) on top of the single
pass instead of a recomputation from scratch. The recomputed leaf hashes are kept packed (32 bytes each)
only to name the original of a duplicated entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import merkle, scan
from .note import Checkpoint, NoteError, Verifier
from .scan import Decoded
from .store import LedgerStore, StoredCheckpoint, StoredEntry

_HASH = 32  # bytes per SHA-256 leaf hash


@dataclass(frozen=True)
class Report:
    """The outcome: ``ok``, or the first bad entry seq (when one can be named) and the reason."""

    ok: bool
    entries: int
    checkpoints: int
    first_bad_seq: int | None = None
    reason: str = ""


class Leaves:
    """Recomputed leaf hashes, packed; ``leaves[i]`` is the hash of entry ``i``."""

    def __init__(self) -> None:
        self._packed = bytearray()

    def __len__(self) -> int:
        return len(self._packed) // _HASH

    def __getitem__(self, index: int) -> bytes:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return bytes(self._packed[index * _HASH : (index + 1) * _HASH])

    def append(self, leaf: bytes) -> None:
        self._packed += leaf


def check_entry(
    index: int, row: StoredEntry, leaves: Leaves, leaf: bytes | None = None, found: Decoded | None = None
) -> tuple[int, str] | None:
    """The first bad seq and why, if the row at ``index`` is not entry ``index``; ``leaves`` are those before it.

    ``leaf`` (the row's recomputed leaf hash) and ``found`` (its ``scan.decode_one``) save recomputing them.
    """
    if row.seq != index:
        return index, f"entry {index} is missing (the next stored seq is {row.seq})"
    if (leaf or merkle.leaf_hash(row.data)) != row.leaf_hash:
        return index, f"entry {index} was modified: its bytes do not match its leaf hash"
    seq = scan.decode_one(row.data) if found is None else found
    if isinstance(seq, str):
        return index, f"entry {index} is not a canonical entry: {seq}"
    if seq < index and leaves[seq] == row.leaf_hash:
        return index, f"entry {index} is a copy of entry {seq}: an entry was inserted"
    if seq < index:
        return seq, f"entry {seq} appears again at position {index}: an entry was inserted"
    if seq > index:
        return index, f"entry {index} holds entry {seq}: entries were reordered"
    return None


def _signatures(
    store: LedgerStore, checkpoints: list[StoredCheckpoint], verifier: Verifier | None
) -> list[tuple[int, Checkpoint]] | str:
    """The signed heads in tree-size order (with each checkpoint's number), or why one is not valid."""
    if verifier is None and checkpoints:
        vkey = store.vkey()
        if vkey is None:
            return "checkpoints exist but no key is recorded"
        verifier = Verifier.parse(vkey)
    heads: list[tuple[int, Checkpoint]] = []
    for number, cp in sorted(enumerate(checkpoints), key=lambda item: item[1].tree_size):
        assert verifier is not None
        try:
            head = Checkpoint.parse(verifier.verify(cp.note))
        except NoteError as exc:
            return f"checkpoint {number}: {exc}"
        if (head.origin, head.size, head.root_hash) != (store.origin, cp.tree_size, cp.root_hash):
            return f"checkpoint {number}: its columns disagree with its signed note"
        heads.append((number, head))
    return heads


def verify(store: LedgerStore, verifier: Verifier | None = None, *, workers: int | None = None) -> Report:
    """Check every entry and checkpoint of ``store``; ``verifier`` defaults to the key the store recorded.

    ``workers`` processes decode the entries (``scan.decoded``); ``None`` picks by the log's size.
    """
    checkpoints = store.checkpoints()  # read first: entries appended meanwhile are simply not covered yet
    heads = _signatures(store, checkpoints, verifier)
    sizes = sorted({head.size for _, head in heads} if not isinstance(heads, str) else set(), reverse=True)
    roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT}
    leaves = Leaves()
    tree = merkle.CompactRange()
    bad: tuple[int, str] | None = None
    while sizes and sizes[-1] == 0:
        sizes.pop()
    if workers is None:
        workers = scan.default_workers(store.size())
    for index, (row, decoded, leaf) in enumerate(scan.decoded(store.entries(), workers)):
        if bad is None:
            bad = check_entry(index, row, leaves, leaf, decoded)
        leaves.append(leaf)
        tree.append(leaf)
        if sizes and sizes[-1] == tree.size:
            roots[sizes.pop()] = tree.root()
    count = len(leaves)
    if isinstance(heads, str):
        return Report(False, count, len(checkpoints), None, heads)
    confirmed = 0  # entries below this size are fixed by a checkpoint that matched
    for number, head in heads:
        found = _check_root(number, head, roots, count, confirmed)
        if found is None:
            confirmed = head.size
        elif bad is None or bad[0] >= head.size:  # a bad entry below head.size already explains it
            bad = found
    if bad is not None:
        return Report(False, count, len(checkpoints), bad[0], bad[1])
    return Report(True, count, len(checkpoints))


def _check_root(
    number: int, head: Checkpoint, roots: dict[int, bytes], count: int, confirmed: int
) -> tuple[int, str] | None:
    """The first bad seq and why, if the signed ``head`` does not match the recomputed tree."""
    if head.size > count:
        return count, f"entry {count} is missing: checkpoint {number} covers {head.size} entries"
    if roots[head.size] != head.root_hash:
        # A root mismatch cannot be pinned to one entry; name the first entry no matching checkpoint fixes.
        reason = f"an entry in {confirmed}..{head.size - 1} was changed: checkpoint {number} does not match"
        return confirmed, reason
    return None
