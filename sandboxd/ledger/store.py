"""The ledger storage Protocol; backends live one per module (``sqlite.py``; PostgreSQL is still to come)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from .entry import Kind


@dataclass(frozen=True)
class StoredEntry:
    """A row as stored: the seq column, the stored leaf hash and the canonical entry bytes."""

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


class LedgerStore(Protocol):
    """An append-only, durable log of canonical entries, plus signed checkpoints over it.

    - ``append`` assigns the next seq (the leaf index, from 0), stores the canonical bytes and leaf hash,
      and returns only once the entry is durable (its transaction committed and synced).
    - ``entries`` yields every stored row in seq order, *as stored*: a verifier must not trust the backend
      to have kept them intact, so no checking happens here.
    - ``checkpoint`` computes the root over all entries, signs it, stores it and returns it.
    - ``origin`` and ``vkey`` name the log and the verifier key its checkpoints are signed with
      (``vkey`` is ``None`` until a signer has been used).
    """

    origin: str

    def append(self, kind: Kind, body: dict[str, Any]) -> tuple[int, bytes]:
        """Append an entry durably; return its seq and leaf hash."""
        ...

    def size(self) -> int:
        """The number of stored entries."""
        ...

    def entries(self) -> Iterator[StoredEntry]:
        """Every stored row, ordered by seq."""
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

    def close(self) -> None:
        """Release the backend's resources."""
        ...
