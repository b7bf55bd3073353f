"""The review queue in SQL, shared by the SQLite and PostgreSQL backends (which differ in placeholders,
connection set-up and schema locking only)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, cast

from .store import Label, ReviewItem, ReviewLabel

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS review_items (
        seq BIGINT PRIMARY KEY,
        kind TEXT NOT NULL,
        task_key TEXT NOT NULL,
        policy TEXT NOT NULL,
        time TEXT NOT NULL,
        body TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS review_labels (
        item BIGINT PRIMARY KEY,
        task_key TEXT NOT NULL,
        label TEXT NOT NULL,
        comment TEXT NOT NULL,
        reviewer TEXT NOT NULL,
        time TEXT NOT NULL,
        ledger_seq BIGINT
    )""",
    "CREATE INDEX IF NOT EXISTS review_labels_task ON review_labels (task_key, ledger_seq)",
)
_ITEM_COLUMNS = "seq, kind, task_key, policy, time, body"
_KEYS_PER_QUERY = 500


class Cursor(Protocol):
    rowcount: int

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    def execute(self, sql: Any, params: Any = ..., /) -> Any: ...


def _item(row: Sequence[Any]) -> ReviewItem:
    seq, kind, task_key, policy, time, body = row
    return ReviewItem(int(seq), str(kind), str(task_key), str(policy), str(time), json.loads(body))


class SqlReviewStore:
    """A ``ReviewStore`` over a DB-API connection in autocommit mode; ``mark`` is its placeholder."""

    def __init__(self, db: Connection, mark: str) -> None:
        self._db = db
        self._mark = mark

    def _run(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return cast(Cursor, self._db.execute(sql.replace("?", self._mark), tuple(params)))

    def enqueue(self, items: Sequence[ReviewItem]) -> None:
        for it in items:
            self._run(
                f"INSERT INTO review_items ({_ITEM_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (seq) DO NOTHING",  # noqa: S608 - fixed column list
                (it.seq, it.kind, it.task_key, it.policy, it.time, json.dumps(it.body, sort_keys=True)),
            )

    def item(self, seq: int) -> ReviewItem | None:
        rows = self._run(f"SELECT {_ITEM_COLUMNS} FROM review_items WHERE seq = ?", (seq,)).fetchall()  # noqa: S608 - fixed column list
        return _item(rows[0]) if rows else None

    def pending(self, after: int, limit: int) -> list[ReviewItem]:
        rows = self._run(
            f"SELECT {_ITEM_COLUMNS} FROM review_items i WHERE seq > ? AND NOT EXISTS "  # noqa: S608 - fixed column list
            "(SELECT 1 FROM review_labels l WHERE l.item = i.seq) ORDER BY seq LIMIT ?",
            (after, limit),
        ).fetchall()
        return [_item(row) for row in rows]

    def claim(self, label: ReviewLabel) -> bool:
        cursor = self._run(
            "INSERT INTO review_labels (item, task_key, label, comment, reviewer, time, ledger_seq) "
            "VALUES (?, ?, ?, ?, ?, ?, NULL) ON CONFLICT (item) DO NOTHING",
            (label.item, label.task_key, label.label, label.comment, label.reviewer, label.time),
        )
        return cursor.rowcount == 1

    def settle(self, item: int, ledger_seq: int) -> None:
        self._run("UPDATE review_labels SET ledger_seq = ? WHERE item = ?", (ledger_seq, item))

    def release(self, item: int) -> None:
        self._run("DELETE FROM review_labels WHERE item = ? AND ledger_seq IS NULL", (item,))

    def latest_labels(self, task_keys: Iterable[str]) -> dict[str, Label]:
        keys = sorted(set(task_keys))
        latest: dict[str, Label] = {}
        for start in range(0, len(keys), _KEYS_PER_QUERY):
            chunk = keys[start : start + _KEYS_PER_QUERY]
            marks = ", ".join("?" * len(chunk))
            rows = self._run(
                f"SELECT task_key, label FROM review_labels WHERE ledger_seq IS NOT NULL "  # noqa: S608 - placeholders only
                f"AND task_key IN ({marks}) ORDER BY ledger_seq",
                chunk,
            ).fetchall()
            for task_key, label in rows:
                latest[str(task_key)] = cast(Label, str(label))
        return latest
