"""The review queue in the ledger's SQLite file (WAL, ``synchronous=FULL``), on its own connection."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .sql import SCHEMA, SqlReviewStore


class SqliteReviewStore(SqlReviewStore):
    """A ``ReviewStore`` in an SQLite file; used by one thread at a time."""

    def __init__(self, path: Path | str) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        for statement in SCHEMA:
            self._conn.execute(statement)
        super().__init__(self._conn, "?")

    def close(self) -> None:
        self._conn.close()
