"""The ledger storage Protocol; backends live one per module (``sqlite.py``, ``postgres.py``), chosen by URL in
``stores.py``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from . import merkle
from .entry import Kind, canonical_json, now
from .families import FamilySet, FamilySetInfo
from .query import EntryFilter, facets

Item = tuple[Kind, Mapping[str, Any]]


class StoredEntry(NamedTuple):
    """A row as stored: the seq column, the stored leaf hash and the canonical entry bytes.

    A named tuple, not a dataclass: verify makes a million of them, and tuples are built several times faster.
    """

    seq: int
    leaf_hash: bytes
    data: bytes


@dataclass(frozen=True)
class StoredCheckpoint:
    """A stored checkpoint: its columns and the signed note they should agree with."""

    tree_size: int
    root_hash: bytes
    timestamp: str
    note: str


Row = tuple[int, bytes, bytes, str, str, str | None, str | None, str | None, str, str | None]
ROW_COLUMNS = "seq, leaf_hash, data, kind, time, verdict, decision, task_type, rules, program_sha256"


class EncodedBody(dict[str, Any]):
    """An entry body with its canonical JSON, made once when the body is appended (``Recorder.append``
    encodes every body before queueing it, so that one that cannot be encoded fails alone). ``encode_row``
    then splices those bytes in instead of encoding the body again. Read-only once made: the bytes are
    not made again if it changes."""

    __slots__ = ("canonical",)

    def __init__(self, body: Mapping[str, Any]) -> None:
        super().__init__(body)
        self.canonical = canonical_json(self)  # json encodes a dict subclass as the dict it holds


def encode_row(seq: int, kind: Kind, body: Mapping[str, Any], time: str | None = None) -> Row:
    """The stored columns of a new entry: seq, leaf hash, canonical bytes, then the query columns.

    ``time`` defaults to now; a group append passes one time for all its entries. The bytes are exactly
    ``Entry(seq, kind, time, body).encode()``, built without the intermediate object (this runs per append):
    the keys sort as body, kind, seq, time, and a sorted, compact encoding of the whole holds the body's
    own encoding unchanged, so the body's bytes are made once (``EncodedBody``) and spliced in.
    """
    kind_value = kind.value if type(kind) is Kind else Kind(kind).value
    stamp = time or now()
    if type(body) is EncodedBody:
        body_json = body.canonical
    else:
        body_json = canonical_json(body if type(body) is dict else dict(body))
    data = b"".join(
        (
            b'{"body":',
            body_json,
            b',"kind":',
            canonical_json(kind_value),
            b',"seq":',
            canonical_json(seq),
            b',"time":',
            canonical_json(stamp),
            b"}",
        )
    )
    found = facets(body)
    return (
        seq,
        merkle.leaf_hash(data),
        data,
        kind_value,
        stamp,
        found.verdict,
        found.decision,
        found.task_type,
        found.rules,
        found.program_sha256,
    )


class LedgerStore(Protocol):
    """An append-only, durable log of canonical entries, plus signed checkpoints over it.

    - ``append`` assigns the next seq (the leaf index, from 0), stores the canonical bytes and leaf hash,
      and returns only once the entry is durable (its transaction committed and synced).
    - ``append_many`` does the same for several entries in **one** transaction, with consecutive seqs; it is
      safe when several processes append to the same log at once (the seqs stay gap-free).
    - ``entries`` yields every stored row from seq ``start`` on, in seq order, *as stored*: a verifier must
      not trust the backend to have kept them intact, so no checking happens here.
    - ``leaf_hashes`` returns the stored leaf hashes of the first ``size`` entries (for proofs).
    - ``query`` returns up to ``limit`` rows with seq above ``after`` that match a filter, in seq order.
    - ``checkpoint`` computes the root over all entries, signs it, stores it and returns it.
    - ``record_families`` stores a family set (``families.py``) next to the entries, outside the tree, and
      prunes all but the newest ``families.KEEP_SETS``; ``family_set`` describes a stored one (or ``None``).
    - ``origin`` and ``vkey`` name the log and the verifier key its checkpoints are signed with
      (``vkey`` is ``None`` until a signer has been used).
    - ``compact_log`` folds the backend's own write-ahead log into its main file, where it keeps one and
      leaves that to its owner (SQLite); the recorder calls it after an append is acknowledged, so that no
      append waits for it.
    """

    origin: str

    def append(self, kind: Kind, body: dict[str, Any]) -> tuple[int, bytes]:
        """Append an entry durably; return its seq and leaf hash."""
        ...

    def append_many(self, items: Sequence[Item]) -> list[tuple[int, bytes]]:
        """Append entries durably in one transaction; return their seqs and leaf hashes, in order."""
        ...

    def size(self) -> int:
        """The number of stored entries."""
        ...

    def entries(self, start: int = 0) -> Iterator[StoredEntry]:
        """Every stored row from seq ``start`` on, ordered by seq."""
        ...

    def leaf_hashes(self, size: int) -> list[bytes]:
        """The stored leaf hashes of seqs ``0..size-1``."""
        ...

    def query(self, flt: EntryFilter, after: int, limit: int) -> list[StoredEntry]:
        """Up to ``limit`` rows with seq above ``after`` matching ``flt``, ordered by seq."""
        ...

    def checkpoint(self) -> StoredCheckpoint:
        """Sign and store a checkpoint over every entry."""
        ...

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every stored checkpoint, oldest first."""
        ...

    def vkey(self) -> str | None:
        """The verifier key recorded when the log was first signed."""
        ...

    def record_families(self, families: FamilySet) -> None:
        """Store a family set (re-recording one refreshes its time); prune the oldest beyond the cap."""
        ...

    def family_set(self, set_id: str) -> FamilySetInfo | None:
        """A stored family set's description, or ``None`` if it was never recorded or was pruned."""
        ...

    def compact_log(self) -> int:
        """Fold the write-ahead log into the main file; the number of log pages it held (0: none kept)."""
        ...

    def close(self) -> None:
        """Release the backend's resources."""
        ...
