"""The PostgreSQL ledger backend, for deployments where several daemon replicas share one log.

Seqs come from a single-row counter (``head``) read ``FOR UPDATE`` in the appending transaction: concurrent
appenders queue on that row lock, so each transaction gets the next consecutive block of seqs and commits
it before the next one starts. A failed transaction rolls the counter back with its rows, so seqs stay
gap-free. Checkpoints take the same lock, so a checkpoint covers exactly the committed prefix. Commits are
durable under PostgreSQL's default ``synchronous_commit=on`` (the WAL is flushed before COMMIT returns).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from . import family_tables, merkle
from .entry import Kind, now
from .families import FamilySet, FamilySetInfo
from .note import Checkpoint, Signer
from .query import EntryFilter, where
from .store import ROW_COLUMNS, Item, StoredCheckpoint, StoredEntry, encode_row

_SCHEMA_LOCK = 0x5A4E_D1ED  # advisory lock id: replicas starting together create the schema once
_SCHEMA = """
CREATE TABLE IF NOT EXISTS head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL
);
INSERT INTO head VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS entries (
    seq BIGINT PRIMARY KEY,
    leaf_hash BYTEA NOT NULL,
    data BYTEA NOT NULL,
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
    id BIGSERIAL PRIMARY KEY,
    tree_size BIGINT NOT NULL,
    root_hash BYTEA NOT NULL,
    timestamp TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
_PAGE = 10_000
_HAS_PROGRAM_COLUMN = """
SELECT 1 FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = 'entries' AND column_name = 'program_sha256'
"""


class _Sql:
    """The connection as ``family_tables`` uses it."""

    mark = "%s"

    def __init__(self, db: psycopg.Connection[Any]) -> None:
        self._db = db

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> psycopg.Cursor[Any]:
        return self._db.execute(statement, params or None)

    def executemany(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        with self._db.cursor() as cursor:
            cursor.executemany(statement, rows)


class PostgresLedgerStore:
    """A ``LedgerStore`` in a PostgreSQL database (give the ledger a database of its own)."""

    def __init__(self, url: str, *, origin: str = "sandboxd/ledger", signer: Signer | None = None) -> None:
        self._db = psycopg.connect(url, autocommit=True, connect_timeout=10)
        self._signer = signer
        self._sql = _Sql(self._db)
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in filter(str.strip, (_SCHEMA + family_tables.TABLES).split(";")):
                self._db.execute(statement)
            family_tables.upgrade(self._sql, self._db.execute(_HAS_PROGRAM_COLUMN).fetchone() is not None)
            self._db.execute("INSERT INTO meta VALUES ('origin', %s) ON CONFLICT (key) DO NOTHING", (origin,))
            row = self._db.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()
        self.origin: str = str(row[0]) if row else origin
        # Filled from the stored leaf hashes by the first checkpoint (readers such as verify never need it).
        self._tree = merkle.CompactRange()

    def _catch_up(self) -> None:
        """Add the stored leaf hashes the compact range has not seen yet."""
        for leaf in self._leaves(self._tree.size, None):
            self._tree.append(leaf)

    def _leaves(self, start: int, stop: int | None) -> Iterator[bytes]:
        for row in self._pages("leaf_hash", start, stop):
            yield bytes(row[0])

    def _pages(self, columns: str, start: int, stop: int | None) -> Iterator[tuple[Any, ...]]:
        """Rows with ``start <= seq < stop`` in seq order, fetched a page at a time (keyset pagination)."""
        after = start - 1
        while True:
            rows = self._db.execute(
                f"SELECT seq, {columns} FROM entries WHERE seq > %s AND seq < %s ORDER BY seq LIMIT %s",  # noqa: S608 - columns are fixed by the caller
                (after, stop if stop is not None else 2**62, _PAGE),
            ).fetchall()
            for row in rows:
                yield row[1:]
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    def append(self, kind: Kind, body: dict[str, Any]) -> tuple[int, bytes]:
        """Append an entry; it is committed before this returns."""
        [appended] = self.append_many([(kind, body)])
        return appended

    def append_many(self, items: Sequence[Item]) -> list[tuple[int, bytes]]:
        """Append entries in one transaction with consecutive seqs, committed before this returns."""
        if not items:
            return []
        with self._db.transaction():
            row = self._db.execute("SELECT size FROM head WHERE id = 1 FOR UPDATE").fetchone()
            first = int(row[0]) if row else 0
            stamp = now()
            rows = [
                encode_row(first + offset, kind, body, stamp) for offset, (kind, body) in enumerate(items)
            ]
            with self._db.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO entries ({ROW_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",  # noqa: S608 - fixed column list
                    rows,
                )
            self._db.execute("UPDATE head SET size = %s WHERE id = 1", (first + len(rows),))
        if first == self._tree.size:  # otherwise another replica appended; checkpoint() catches up
            for appended in rows:
                self._tree.append(appended[1])
        return [(appended[0], appended[1]) for appended in rows]

    def size(self) -> int:
        """The number of stored entries."""
        row = self._db.execute("SELECT COUNT(*) FROM entries").fetchone()
        return int(row[0]) if row else 0

    def entries(self, start: int = 0) -> Iterator[StoredEntry]:
        """Every stored row from seq ``start`` on, ordered by seq (fetched in pages)."""
        after = start - 1
        while True:
            rows = self._db.execute(
                "SELECT seq, leaf_hash, data FROM entries WHERE seq > %s ORDER BY seq LIMIT %s",
                (after, _PAGE),
            ).fetchall()
            for seq, leaf, data in rows:
                yield StoredEntry(int(seq), bytes(leaf), bytes(data))
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    def leaf_hashes(self, size: int) -> list[bytes]:
        """The stored leaf hashes of seqs ``0..size-1``."""
        return list(self._leaves(0, size))

    def query(self, flt: EntryFilter, after: int, limit: int) -> list[StoredEntry]:
        """Up to ``limit`` rows with seq above ``after`` matching ``flt``, ordered by seq."""
        condition, params = where(flt, after, "%s", "strpos")
        rows = self._db.execute(
            f"SELECT seq, leaf_hash, data FROM entries WHERE {condition} ORDER BY seq LIMIT %s",  # noqa: S608 - columns are fixed, values are parameters
            [*params, limit],
        ).fetchall()
        return [StoredEntry(int(seq), bytes(leaf), bytes(data)) for seq, leaf, data in rows]

    def checkpoint(self) -> StoredCheckpoint:
        """Sign and store a checkpoint over every committed entry (appends wait meanwhile)."""
        if self._signer is None:
            raise RuntimeError("this ledger store was opened without a signer")
        with self._db.transaction():
            self._db.execute("SELECT size FROM head WHERE id = 1 FOR UPDATE")
            self._catch_up()
            head = Checkpoint(self.origin, self._tree.size, self._tree.root())
            cp = StoredCheckpoint(head.size, head.root_hash, now(), self._signer.sign(head.body()))
            self._db.execute(
                "INSERT INTO checkpoints (tree_size, root_hash, timestamp, note) VALUES (%s, %s, %s, %s)",
                (cp.tree_size, cp.root_hash, cp.timestamp, cp.note),
            )
            self._db.execute(
                "INSERT INTO meta VALUES ('vkey', %s) ON CONFLICT (key) DO NOTHING",
                (self._signer.verifier.vkey(),),
            )
        return cp

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every stored checkpoint, oldest first."""
        rows = self._db.execute(
            "SELECT tree_size, root_hash, timestamp, note FROM checkpoints ORDER BY id"
        ).fetchall()
        return [StoredCheckpoint(int(s), bytes(r), str(t), str(n)) for s, r, t, n in rows]

    def vkey(self) -> str | None:
        """The verifier key recorded when the log was first signed."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'vkey'").fetchone()
        return None if row is None else str(row[0])

    def record_families(self, families: FamilySet) -> None:
        """Store a family set next to the entries (outside the tree); prune the oldest beyond the cap."""
        with self._db.transaction():
            self._db.execute("LOCK TABLE family_sets IN SHARE ROW EXCLUSIVE MODE")  # one recorder at a time
            family_tables.record(self._sql, families)

    def family_set(self, set_id: str) -> FamilySetInfo | None:
        """A stored family set's description, or ``None``."""
        return family_tables.lookup(self._sql, set_id)

    def compact_log(self) -> int:
        """Nothing to do: PostgreSQL checkpoints its own write-ahead log."""
        return 0

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
