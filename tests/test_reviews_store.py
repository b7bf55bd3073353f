"""The review queue's storage on SQLite and on a real PostgreSQL, in the ledger's own database, and the desk
that claims, ledgers and settles labels (docs/reviews.md)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from postgres_server import PostgresServer

from sandboxd.exceptions import LedgerUnavailable
from sandboxd.ledger.config import LedgerConfig
from sandboxd.ledger.entry import Entry, Kind
from sandboxd.ledger.recorder import Recorder
from sandboxd.ledger.store import Item
from sandboxd.ledger.stores import open_store
from sandboxd.ledger.verify import verify
from sandboxd.metrics import Metrics
from sandboxd.reviews.desk import AlreadyLabelled, ReviewDesk, UnknownItem
from sandboxd.reviews.store import ReviewItem, ReviewLabel, ReviewStore
from sandboxd.reviews.stores import open_review_store


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty ledger database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.database()


@pytest.fixture
def store(url: str) -> Iterator[ReviewStore]:
    opened = open_review_store(url)
    yield opened
    opened.close()


def item(seq: int, task_key: str = "k1") -> ReviewItem:
    return ReviewItem(seq, "answer_checked", task_key, "default", "2026-12-01T00:00:00.000000Z", {"n": seq})


def label(seq: int, verdict: str = "approve", task_key: str = "k1") -> ReviewLabel:
    return ReviewLabel(seq, task_key, verdict, "why", "tok1", "2026-12-01T00:00:01.000000Z")  # type: ignore[arg-type]


def test_enqueue_is_idempotent_and_pending_pages(store: ReviewStore) -> None:
    """Re-queuing a seq keeps one item; pending returns unlabelled items above the cursor in seq order."""
    store.enqueue([item(5), item(2), item(9)])
    store.enqueue([item(5)])
    assert [i.seq for i in store.pending(-1, 10)] == [2, 5, 9]
    assert [i.seq for i in store.pending(2, 1)] == [5]
    assert store.item(9) == item(9)
    assert store.item(3) is None


def test_claim_once_release_and_settle(store: ReviewStore) -> None:
    """A second claim fails; a released claim can be made again; only settled labels count as preferences."""
    store.enqueue([item(1), item(2, "k2")])
    assert store.claim(label(1, "flag")) is True
    assert store.claim(label(1, "approve")) is False
    assert [i.seq for i in store.pending(-1, 10)] == [2]  # claimed items leave the queue
    assert store.latest_labels(["k1"]) == {}  # not settled yet
    store.release(1)
    assert store.claim(label(1, "approve")) is True
    store.settle(1, 40)
    store.release(1)  # a settled label is never released
    assert store.claim(label(1, "flag")) is False
    assert store.latest_labels(["k1", "k2", "unknown"]) == {"k1": "approve"}


def test_latest_label_wins_per_task(store: ReviewStore) -> None:
    """Several labels on items of one task: the one ledgered last is the task's preference."""
    store.enqueue([item(1), item(2), item(3, "k2")])
    for seq, verdict, ledger_seq, key in [
        (2, "flag", 11, "k1"),
        (1, "approve", 10, "k1"),
        (3, "flag", 12, "k2"),
    ]:
        assert store.claim(label(seq, verdict, key))
        store.settle(seq, ledger_seq)
    assert store.latest_labels(["k1", "k2"]) == {"k1": "flag", "k2": "flag"}
    many = [f"x{n}" for n in range(1200)]  # more keys than one query's placeholders
    assert store.latest_labels([*many, "k2"]) == {"k2": "flag"}


def test_shares_the_ledger_database(url: str) -> None:
    """The queue's tables live next to the ledger's; both open the same URL and the ledger still verifies."""
    ledger = open_store(url)
    reviews = open_review_store(url)
    try:
        seq, _ = ledger.append(Kind.ANSWER_CHECKED, {"x": 1})
        reviews.enqueue([item(seq)])
        again = open_review_store(url)  # schema creation is idempotent
        again.close()
        assert [i.seq for i in reviews.pending(-1, 10)] == [seq]
        assert verify(ledger).ok
    finally:
        reviews.close()
        ledger.close()


def test_concurrent_claims_admit_one(url: str) -> None:
    """Claims from several connections at once (several replicas): exactly one wins."""
    first = open_review_store(url)
    first.enqueue([item(7)])
    first.close()
    wins: list[bool] = []
    barrier = threading.Barrier(4)

    def claim() -> None:
        own = open_review_store(url)
        try:
            barrier.wait()
            wins.append(own.claim(label(7)))
        finally:
            own.close()

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False, False, False, True]


def _recorder(url: str, tmp_path: Path) -> Recorder:
    config = LedgerConfig(url, "test/reviews", tmp_path / "key", 1000, 3600.0)
    return Recorder(config, Metrics())


def test_desk_ledgers_labels_and_feeds_flags(url: str, tmp_path: Path) -> None:
    """The desk appends a review_label entry, settles the label with its seq, and reports the flag."""
    flags: list[bool] = []

    async def scenario() -> None:
        recorder = _recorder(url, tmp_path)
        await recorder.start()
        desk = ReviewDesk(url, recorder, flags.append)
        try:
            [seq] = await recorder.append([(Kind.ANSWER_CHECKED, {"program": "def f(): pass"})])
            await desk.enqueue([item(seq, "task")])
            done, queued = await desk.label(seq, "flag", "hard-coded", "tok9")
            assert queued.seq == seq
            assert done.ledger_seq == seq + 1
            assert await desk.preferences(["task"]) == {"task": "flag"}
            with pytest.raises(AlreadyLabelled):
                await desk.label(seq, "approve", "again", "tok9")
            with pytest.raises(UnknownItem):
                await desk.label(seq + 100, "approve", "none", "tok9")
        finally:
            await desk.stop()
            await recorder.stop()

    asyncio.run(scenario())
    assert flags == [True]
    ledger = open_store(url)
    try:
        rows = list(ledger.entries())
        assert verify(ledger).ok
    finally:
        ledger.close()
    entry = Entry.decode(rows[-1].data)
    assert entry.kind is Kind.REVIEW_LABEL
    assert entry.body["label"] == "flag"
    assert entry.body["reviewer"] == "tok9"


class _DownLedger:
    """A ledger whose appends fail, as a recorder does while its database is down."""

    async def append(self, items: Sequence[Item]) -> list[int]:
        raise LedgerUnavailable("ledger unavailable: test")


def test_unledgered_label_is_released(tmp_path: Path) -> None:
    """If the label cannot be ledgered the request fails 503-style and the item can be labelled again."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    flags: list[bool] = []

    async def scenario() -> None:
        desk = ReviewDesk(url, _DownLedger(), flags.append)  # type: ignore[arg-type]
        try:
            await desk.enqueue([item(3)])
            with pytest.raises(LedgerUnavailable):
                await desk.label(3, "flag", "x", "tok")
            assert [i.seq for i in await desk.pending(-1, 10)] == [3]
        finally:
            await desk.stop()

    asyncio.run(scenario())
    assert flags == []


def test_unreachable_database_is_ledger_unavailable(tmp_path: Path) -> None:
    """A queue that cannot open its database raises LedgerUnavailable (HTTP 503), never a raw driver error."""
    url = f"sqlite:///{tmp_path}/missing-dir/ledger.db"

    async def scenario() -> None:
        desk = ReviewDesk(url, _DownLedger(), lambda flagged: None)  # type: ignore[arg-type]
        try:
            with pytest.raises(LedgerUnavailable):
                await desk.pending(-1, 10)
        finally:
            await desk.stop()

    asyncio.run(scenario())
