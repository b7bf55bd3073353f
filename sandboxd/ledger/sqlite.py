"""The SQLite ledger backend: WAL mode, ``synchronous=FULL``, one ``BEGIN IMMEDIATE`` transaction per append.

``BEGIN IMMEDIATE`` takes SQLite's write lock before the next seq is read, so several processes appending
to one file still get gap-free seqs. The in-memory compact range follows the log; when another writer has
appended in between, ``checkpoint`` catches up from the stored leaf hashes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from . import family_tables, merkle
from .entry import Kind, now
from .families import FamilySet, FamilySetInfo
from .note import Checkpoint, Signer
from .query import EntryFilter, where
from .store import ROW_COLUMNS, Item, StoredCheckpoint, StoredEntry, encode_row

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    leaf_hash BLOB NOT NULL,
    data BLOB NOT NULL,
    kind TEXT,
    time TEXT,
    verdict TEXT,
    decision TEXT,
    task_type TEXT,
    rules TEXT NOT NULL DEFAULT '',
    program_sha256 TEXT
);
CREATE INDEX IF NOT EXISTS entries_time ON entries (time);
CREATE INDEX IF NOT EXISTS entries_kind ON entries (kind, seq);
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


T = TypeVar("T")


class _Sql:
    """The connection as ``family_tables`` uses it."""

    mark = "?"

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        return self._db.execute(statement, params)

    def executemany(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        self._db.executemany(statement, rows)


def _blob(value: object) -> bytes:
    """A column as bytes, even if someone rewrote it with another SQLite type."""
    return value if isinstance(value, bytes) else str(value).encode()


class SqliteLedgerStore:
    """A ``LedgerStore`` in one SQLite file. ``signer`` is needed only to make checkpoints.

    The connection may be used from any thread, but by one at a time (the service's ledger thread).
    """

    def __init__(
        self, path: Path | str, *, origin: str = "sandboxd/ledger", signer: Signer | None = None
    ) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        # No automatic checkpoint: SQLite's folds the WAL into the database inside the commit that passes
        # 1,000 pages, which made one append of 512 entries in about five take 23 ms instead of 10. The
        # recorder calls compact_log once the append is acknowledged. Commits are durable in the WAL alone.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._db.executescript(_SCHEMA + family_tables.TABLES)
        self._sql = _Sql(self._db)
        if not self._has_program_column():
            self._write(lambda: family_tables.upgrade(self._sql, self._has_program_column()))
        self._signer = signer
        row = self._db.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()
        self.origin: str = row[0] if row else origin
        if not row:
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('origin', ?)", (origin,))
        # Filled from the stored leaf hashes by the first checkpoint (readers such as verify never need it).
        self._tree = merkle.CompactRange()

    def _has_program_column(self) -> bool:
        return any(row[1] == "program_sha256" for row in self._db.execute("PRAGMA table_info(entries)"))

    def _write(self, action: Callable[[], T]) -> T:
        """Run ``action`` in one ``BEGIN IMMEDIATE`` transaction and return what it returns."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            result = action()
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return result

    def _catch_up(self) -> None:
        """Add the stored leaf hashes the compact range has not seen yet."""
        rows = self._db.execute(
            "SELECT leaf_hash FROM entries WHERE seq >= ? ORDER BY seq", (self._tree.size,)
        )
        for (leaf,) in rows:
            self._tree.append(_blob(leaf))

    def append(self, kind: Kind, body: dict[str, Any]) -> tuple[int, bytes]:
        """Append an entry; it is committed (and synced to the WAL) before this returns."""
        [appended] = self.append_many([(kind, body)])
        return appended

    def append_many(self, items: Sequence[Item]) -> list[tuple[int, bytes]]:
        """Append entries in one transaction, committed (and synced) before this returns."""
        if not items:
            return []

        def insert() -> tuple[int, list[tuple[Any, ...]]]:
            (first,) = self._db.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM entries").fetchone()
            stamp = now()
            rows = [
                encode_row(first + offset, kind, body, stamp) for offset, (kind, body) in enumerate(items)
            ]
            self._db.executemany(
                f"INSERT INTO entries ({ROW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608 - fixed column list
                rows,
            )
            return first, rows

        first, rows = self._write(insert)
        if first == self._tree.size:  # otherwise another writer appended; checkpoint() catches up
            for row in rows:
                self._tree.append(row[1])
        return [(row[0], row[1]) for row in rows]

    def size(self) -> int:
        """The number of stored entries."""
        (n,) = self._db.execute("SELECT COUNT(*) FROM entries").fetchone()
        return int(n)

    def entries(self, start: int = 0) -> Iterator[StoredEntry]:
        """Every stored row from seq ``start`` on, ordered by seq."""
        rows = self._db.execute(
            "SELECT seq, leaf_hash, data FROM entries WHERE seq >= ? ORDER BY seq", (start,)
        )
        for seq, leaf, data in rows:
            yield StoredEntry(seq, _blob(leaf), _blob(data))

    def leaf_hashes(self, size: int) -> list[bytes]:
        """The stored leaf hashes of seqs ``0..size-1``."""
        rows = self._db.execute("SELECT leaf_hash FROM entries WHERE seq < ? ORDER BY seq", (size,))
        return [_blob(leaf) for (leaf,) in rows]

    def query(self, flt: EntryFilter, after: int, limit: int) -> list[StoredEntry]:
        """Up to ``limit`` rows with seq above ``after`` matching ``flt``, ordered by seq."""
        condition, params = where(flt, after, "?", "instr")
        rows = self._db.execute(
            f"SELECT seq, leaf_hash, data FROM entries WHERE {condition} ORDER BY seq LIMIT ?",  # noqa: S608 - columns are fixed, values are parameters
            [*params, limit],
        )
        return [StoredEntry(seq, _blob(leaf), _blob(data)) for seq, leaf, data in rows]

    def checkpoint(self) -> StoredCheckpoint:
        """Sign and store a checkpoint over every entry."""
        signer = self._signer
        if signer is None:
            raise RuntimeError("this ledger store was opened without a signer")

        def sign() -> StoredCheckpoint:
            self._catch_up()
            head = Checkpoint(self.origin, self._tree.size, self._tree.root())
            cp = StoredCheckpoint(head.size, head.root_hash, now(), signer.sign(head.body()))
            self._db.execute(
                "INSERT INTO checkpoints (tree_size, root_hash, timestamp, note) VALUES (?, ?, ?, ?)",
                (cp.tree_size, cp.root_hash, cp.timestamp, cp.note),
            )
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('vkey', ?)", (signer.verifier.vkey(),))
            return cp

        return self._write(sign)

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every stored checkpoint, oldest first."""
        rows = self._db.execute("SELECT tree_size, root_hash, timestamp, note FROM checkpoints ORDER BY id")
        return [StoredCheckpoint(int(s), bytes(r), t, n) for s, r, t, n in rows]

    def vkey(self) -> str | None:
        """The verifier key recorded when the log was first signed."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'vkey'").fetchone()
        return None if row is None else str(row[0])

    def record_families(self, families: FamilySet) -> None:
        """Store a family set next to the entries (outside the tree); prune the oldest beyond the cap."""
        self._write(lambda: family_tables.record(self._sql, families))

    def family_set(self, set_id: str) -> FamilySetInfo | None:
        """A stored family set's description, or ``None``."""
        return family_tables.lookup(self._sql, set_id)

    def compact_log(self) -> int:
        """A passive WAL checkpoint (it waits for no reader); how many pages the log held."""
        _busy, log_pages, _folded = self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return max(int(log_pages), 0)

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()
