"""The review desk: the service's async front to the review queue.

All queue work runs on one dedicated thread with its own connection to the ledger's database; any database
fault becomes ``LedgerUnavailable`` (HTTP 503) and the connection is reopened on the next call. A label is
**claimed** in the queue first (so two reviewers cannot both label an item), then appended to the ledger as
a ``review_label`` entry, durably, then **settled** with that entry's seq. If the ledger append fails the
claim is released and the caller gets 503: nothing is acknowledged that is not in the ledger.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sandboxd.exceptions import LedgerUnavailable
from sandboxd.ledger.entry import Kind, now
from sandboxd.ledger.recorder import Recorder, close_quietly

from .store import Label, ReviewItem, ReviewLabel, ReviewStore
from .stores import open_review_store

log = logging.getLogger(__name__)
T = TypeVar("T")
FlagObserver = Callable[[bool], None]  # called with flagged=True/False once a label is durable


class UnknownItem(LookupError):
    """No sampled item has this id (HTTP 404)."""


class AlreadyLabelled(Exception):
    """The item already has a label (HTTP 409); labels are append-only."""


class ReviewDesk:
    """The review queue as the service uses it."""

    def __init__(self, url: str, ledger: Recorder, on_label: FlagObserver) -> None:
        self.url = url
        self.ledger = ledger
        self.on_label = on_label
        self._store: ReviewStore | None = None
        self._thread: ThreadPoolExecutor | None = None

    def _guarded(self, work: Callable[[ReviewStore], T]) -> T:
        try:
            if self._store is None:
                self._store = open_review_store(self.url)
            return work(self._store)
        except Exception as exc:  # sqlite3, psycopg and OS errors all mean "cannot record"
            self._drop()
            raise LedgerUnavailable(f"review queue unavailable: {type(exc).__name__}: {exc}") from exc

    def _drop(self) -> None:
        store, self._store = self._store, None
        close_quietly(store, "the review store", log)

    async def call(self, work: Callable[[ReviewStore], T]) -> T:
        """Run ``work(store)`` on the desk's thread."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="sandboxd-reviews")
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._guarded, work)

    async def enqueue(self, items: Sequence[ReviewItem]) -> None:
        """Queue sampled items (their ledger entries are already durable)."""
        if items:
            await self.call(lambda store: store.enqueue(items))

    async def pending(self, after: int, limit: int) -> list[ReviewItem]:
        return await self.call(lambda store: store.pending(after, limit))

    async def preferences(self, task_keys: Iterable[str]) -> dict[str, Label]:
        """The most recent label of each task key that has one."""
        keys = list(task_keys)
        if not keys:
            return {}
        return await self.call(lambda store: store.latest_labels(keys))

    async def label(
        self, seq: int, label: Label, comment: str, reviewer: str
    ) -> tuple[ReviewLabel, ReviewItem]:
        """Label item ``seq``; raises ``UnknownItem``, ``AlreadyLabelled`` or ``LedgerUnavailable``."""
        item = await self.call(lambda store: store.item(seq))
        if item is None:
            raise UnknownItem(f"no review item {seq}")
        claim = ReviewLabel(seq, item.task_key, label, comment, reviewer, now())
        if not await self.call(lambda store: store.claim(claim)):
            raise AlreadyLabelled(f"review item {seq} is already labelled")
        body = {
            "item": seq,
            "item_kind": item.kind,
            "task_key": item.task_key,
            "policy": item.policy,
            "label": label,
            "comment": comment,
            "reviewer": reviewer,
        }
        try:
            [ledger_seq] = await self.ledger.append([(Kind.REVIEW_LABEL, body)])
        except BaseException:
            await self.call(lambda store: store.release(seq))
            raise
        await self.call(lambda store: store.settle(seq, ledger_seq))
        self.on_label(label == "flag")
        return ReviewLabel(seq, item.task_key, label, comment, reviewer, claim.time, ledger_seq), item

    async def stop(self) -> None:
        if self._thread is not None:
            thread, self._thread = self._thread, None
            await asyncio.get_running_loop().run_in_executor(thread, self._drop)
            thread.shutdown(wait=True)
