"""The write-ahead log of a SQLite ledger is folded in after appends are acknowledged, never inside one.

SQLite's automatic checkpoint folds the WAL into the database inside the commit that passes 1,000 pages:
about one append of 512 entries in five took 23 ms instead of 10, at the tail of the request that made it.
The store turns it off, and the recorder calls ``compact_log`` once an append has been acknowledged.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from sandboxd.ledger import recorder as recorder_module
from sandboxd.ledger.config import LedgerConfig
from sandboxd.ledger.entry import Kind
from sandboxd.ledger.recorder import Recorder
from sandboxd.ledger.sqlite import SqliteLedgerStore
from sandboxd.ledger.stores import open_store
from sandboxd.ledger.verify import verify
from sandboxd.metrics import Metrics

BODY = {"program": "def f(x):\n    return x\n" * 40, "answer": "[1, 2, 3]"}


def _items(start: int, count: int) -> list[tuple[Kind, dict[str, object]]]:
    return [(Kind.ANSWER_CHECKED, {**BODY, "i": i}) for i in range(start, start + count)]


def test_commits_leave_the_log_to_compact_log(tmp_path: Path) -> None:
    """Commits only grow the log (SQLite alone would have folded it at 1,000 pages, leaving at most that
    plus one append's pages); ``compact_log`` folds it, and every entry is there after a reopen."""
    path = str(tmp_path / "ledger.db")
    store = open_store(path, origin="test/compaction")
    try:
        for start in range(0, 8_000, 500):
            store.append_many(_items(start, 500))
        assert store.compact_log() > 2_000
    finally:
        store.close()
    reopened = open_store(path, origin="test/compaction")
    try:
        assert reopened.size() == 8_000
        assert verify(reopened).ok
    finally:
        reopened.close()


def test_the_recorder_compacts_after_acknowledging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An append that reaches the compaction threshold is acknowledged while the compaction still runs;
    an append that comes meanwhile waits for it, and nothing is lost."""
    monkeypatch.setattr(recorder_module, "COMPACT_ENTRIES", 100)
    started, release = threading.Event(), threading.Event()
    folded: list[int] = []
    original = SqliteLedgerStore.compact_log

    def blocking_compact(store: SqliteLedgerStore) -> int:
        started.set()
        assert release.wait(30)
        pages = original(store)
        folded.append(pages)
        return pages

    monkeypatch.setattr(SqliteLedgerStore, "compact_log", blocking_compact)
    url = str(tmp_path / "ledger.db")

    async def scenario() -> None:
        # Signed checkpoints every 50 entries, more often than compactions: each keeps its own count.
        recorder = Recorder(LedgerConfig(url, "test/compaction", tmp_path / "key", 50, 3600.0), Metrics())
        await recorder.start()
        try:
            first = await recorder.append(_items(0, 60))
            assert not started.is_set()  # under the threshold: no compaction
            second = await recorder.append(_items(60, 60))  # acknowledged before the compaction ends
            assert await asyncio.to_thread(started.wait, 30)
            assert not folded  # still blocked: the append above did not wait for it
            third = asyncio.ensure_future(recorder.append(_items(120, 5)))
            await asyncio.sleep(0.2)
            assert not third.done()  # the ledger thread is compacting; this append waits its turn
            release.set()
            assert await third == list(range(120, 125))
            assert first == list(range(60))
            assert second == list(range(60, 120))
        finally:
            release.set()
            await recorder.stop()

    asyncio.run(scenario())
    assert len(folded) == 1
    assert folded[0] > 0
    store = open_store(url)
    try:
        assert store.size() == 125
        assert verify(store).ok
    finally:
        store.close()
