"""The review queue in the ledger's PostgreSQL database, on its own connection (autocommit: each statement
is committed, with the server's ``synchronous_commit``, before it returns)."""

from __future__ import annotations

import psycopg

from .sql import SCHEMA, SqlReviewStore

_SCHEMA_LOCK = 0x5A4E_D1EE  # advisory lock id (the ledger's plus one): replicas create the tables once


class PostgresReviewStore(SqlReviewStore):
    """A ``ReviewStore`` in a PostgreSQL database."""

    def __init__(self, url: str) -> None:
        self._conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in SCHEMA:
                self._conn.execute(statement)
        super().__init__(self._conn, "%s")

    def close(self) -> None:
        self._conn.close()
