"""The SQL of family sets (``families.py``), shared by the SQLite and PostgreSQL backends.

Two tables next to the entries, outside the Merkle tree: ``family_sets`` (one row per recorded set) and
``family_members`` (the family of each program digest in a set). The entries' ``program_sha256`` query
column is what the ``family`` filter joins on; ledgers created before it existed get the column on open,
filled from their entries once (``upgrade``). Callers run these functions inside their own transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Protocol

from .families import KEEP_SETS, FamilySet, FamilySetInfo, decode_families, encode_families, program_digest

TABLES = """
CREATE TABLE IF NOT EXISTS family_sets (
    id TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    tree_size BIGINT NOT NULL,
    families TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS family_members (
    family_set TEXT NOT NULL,
    program_sha256 TEXT NOT NULL,
    family INTEGER NOT NULL,
    PRIMARY KEY (family_set, program_sha256)
);
CREATE INDEX IF NOT EXISTS family_members_family ON family_members (family_set, family, program_sha256);
"""
_WITH_PROGRAMS = ("task_proposed", "answer_checked")  # the kinds whose bodies carry a ``program``


class Sql(Protocol):
    """A connection as these functions use it; ``mark`` is the driver's placeholder (``?`` or ``%s``)."""

    mark: str

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> Any:
        """Run one statement; the result has ``fetchone``/``fetchall``."""
        ...

    def executemany(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        """Run one statement per row."""
        ...


def record(sql: Sql, families: FamilySet) -> None:
    """Store ``families`` (or refresh its time and size if it exists), then prune the oldest sets."""
    m = sql.mark
    exists = sql.execute(f"SELECT 1 FROM family_sets WHERE id = {m}", (families.id,)).fetchone()  # noqa: S608 - placeholders only
    if exists:
        sql.execute(
            f"UPDATE family_sets SET created = {m}, tree_size = {m} WHERE id = {m}",  # noqa: S608 - placeholders only
            (families.created, families.tree_size, families.id),
        )
    else:
        sql.execute(
            f"INSERT INTO family_sets (id, created, tree_size, families) VALUES ({m}, {m}, {m}, {m})",  # noqa: S608 - placeholders only
            (families.id, families.created, families.tree_size, encode_families(families.families())),
        )
        sql.executemany(
            f"INSERT INTO family_members (family_set, program_sha256, family) VALUES ({m}, {m}, {m})",  # noqa: S608 - placeholders only
            [(families.id, digest, family) for digest, family in sorted(families.members.items())],
        )
    newest_first = sql.execute("SELECT id FROM family_sets ORDER BY created DESC, id DESC").fetchall()
    for (old,) in newest_first[KEEP_SETS:]:
        sql.execute(f"DELETE FROM family_members WHERE family_set = {m}", (old,))  # noqa: S608 - placeholders only
        sql.execute(f"DELETE FROM family_sets WHERE id = {m}", (old,))  # noqa: S608 - placeholders only


def lookup(sql: Sql, set_id: str) -> FamilySetInfo | None:
    """A stored set's description."""
    row = sql.execute(
        f"SELECT id, created, tree_size, families FROM family_sets WHERE id = {sql.mark}",  # noqa: S608 - placeholders only
        (set_id,),
    ).fetchone()
    if row is None:
        return None
    return FamilySetInfo(str(row[0]), str(row[1]), int(row[2]), decode_families(str(row[3])))


def _digests(rows: Any) -> Iterator[tuple[str, int]]:
    for seq, data in rows:
        try:
            body = json.loads(bytes(data))["body"]
        except (ValueError, TypeError, KeyError):  # malformed rows are verify's business, not ours
            continue
        program = body.get("program") if isinstance(body, dict) else None
        if isinstance(program, str):
            yield program_digest(program), int(seq)


def upgrade(sql: Sql, has_column: bool) -> None:
    """Add the ``program_sha256`` column to an older ledger and fill it from the entries' programs."""
    if has_column:
        return
    m = sql.mark
    sql.execute("ALTER TABLE entries ADD COLUMN program_sha256 TEXT")
    rows = sql.execute(
        f"SELECT seq, data FROM entries WHERE kind IN ({m}, {m}) ORDER BY seq",  # noqa: S608 - placeholders only
        _WITH_PROGRAMS,
    ).fetchall()
    sql.executemany(f"UPDATE entries SET program_sha256 = {m} WHERE seq = {m}", list(_digests(rows)))  # noqa: S608 - placeholders only
