"""The SQLite ledger backend: WAL mode, ``synchronous=FULL``, one transaction per append."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import merkle
from .entry import Entry, Kind, now
from .note import Checkpoint, Signer
from .store import StoredCheckpoint, StoredEntry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    leaf_hash BLOB NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tree_size INTEGER NOT NULL,
    root_hash BLOB NOT NULL,
    timestamp TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


def _blob(value: object) -> bytes:
    """A column as bytes, even if someone rewrote it with another SQLite type."""
    return value if isinstance(value, bytes) else str(value).encode()


class SqliteLedgerStore:
    """A ``LedgerStore`` in one SQLite file. ``signer`` is needed only to make checkpoints."""

    def __init__(
        self, path: Path | str, *, origin: str = "sandboxd/ledger", signer: Signer | None = None
    ) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._signer = signer
        row = self._db.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()
        self.origin: str = row[0] if row else origin
        if not row:
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('origin', ?)", (origin,))
        self._tree = merkle.CompactRange()
        for (leaf,) in self._db.execute("SELECT leaf_hash FROM entries ORDER BY seq"):
            self._tree.append(leaf)

    def append(self, kind: Kind, body: dict[str, Any]) -> tuple[int, bytes]:
        """Append an entry; it is committed (and synced to the WAL) before this returns."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            (seq,) = self._db.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM entries").fetchone()
            data = Entry(seq, Kind(kind), now(), body).encode()
            leaf = merkle.leaf_hash(data)
            self._db.execute("INSERT INTO entries VALUES (?, ?, ?)", (seq, leaf, data))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        if seq == self._tree.size:  # another writer may have appended; resync lazily in checkpoint()
            self._tree.append(leaf)
        return seq, leaf

    def size(self) -> int:
        """The number of stored entries."""
        (n,) = self._db.execute("SELECT COUNT(*) FROM entries").fetchone()
        return int(n)

    def entries(self) -> Iterator[StoredEntry]:
        """Every stored row, ordered by seq."""
        for seq, leaf, data in self._db.execute("SELECT seq, leaf_hash, data FROM entries ORDER BY seq"):
            yield StoredEntry(seq, _blob(leaf), _blob(data))

    def checkpoint(self) -> StoredCheckpoint:
        """Sign and store a checkpoint over every entry."""
        if self._signer is None:
            raise RuntimeError("this ledger store was opened without a signer")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            leaves = [bytes(r[0]) for r in self._db.execute("SELECT leaf_hash FROM entries ORDER BY seq")]
            if len(leaves) != self._tree.size:
                self._tree = merkle.CompactRange()
                for leaf in leaves:
                    self._tree.append(leaf)
            head = Checkpoint(self.origin, self._tree.size, self._tree.root())
            cp = StoredCheckpoint(head.size, head.root_hash, now(), self._signer.sign(head.body()))
            self._db.execute(
                "INSERT INTO checkpoints (tree_size, root_hash, timestamp, note) VALUES (?, ?, ?, ?)",
                (cp.tree_size, cp.root_hash, cp.timestamp, cp.note),
            )
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('vkey', ?)", (self._signer.verifier.vkey(),))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return cp

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every stored checkpoint, oldest first."""
        rows = self._db.execute("SELECT tree_size, root_hash, timestamp, note FROM checkpoints ORDER BY id")
        return [StoredCheckpoint(int(s), bytes(r), t, n) for s, r, t, n in rows]

    def vkey(self) -> str | None:
        """The verifier key recorded when the log was first signed."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'vkey'").fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()
