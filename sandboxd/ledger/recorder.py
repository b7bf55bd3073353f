"""The service's ledger: group-committed appends off the event loop, periodic signed checkpoints, sinks.

Every request's entries go through ``append``, which returns only after they are committed (DESIGN.md §4
step 7). All database work runs on one dedicated thread. Appends that arrive while a commit is in flight
are committed together in the next transaction (group commit), so concurrent requests share the cost of a
sync instead of queueing one fsync each. A failed commit fails every request in it with
``LedgerUnavailable`` (HTTP 503): nothing is acknowledged that is not durable. The store is then closed
and reopened on the next append, so the ledger recovers by itself when the database does.

A checkpoint is signed after ``checkpoint_entries`` new entries, or ``checkpoint_seconds`` after the last one
when there are new entries, and at shutdown; each is handed to the sinks without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

import httpx

from sandboxd.exceptions import LedgerUnavailable
from sandboxd.metrics import Metrics

from .config import LedgerConfig, load_signer
from .note import NoteError, Signer
from .sinks import FileSink, Publisher, Sink, WebhookSink, checkpoint_json
from .store import EncodedBody, Item, LedgerStore, StoredCheckpoint
from .stores import open_store, parse_url, redact

log = logging.getLogger(__name__)
T = TypeVar("T")
_MAX_GROUP = 10_000  # entries per transaction at most
# The store's write-ahead log is folded in (``LedgerStore.compact_log``) after this many entries, once their
# appends are acknowledged and no other append waits: about as often as SQLite's own automatic checkpoint
# (1,000 pages), which the SQLite store turns off. Under appends that never pause, at four times this.
COMPACT_ENTRIES = 2_000


def _append_many(items: Sequence[Item], store: LedgerStore) -> list[tuple[int, bytes]]:
    return store.append_many(items)


class _Closable(Protocol):
    def close(self) -> None: ...


def close_quietly(store: _Closable | None, what: str, logger: logging.Logger) -> None:
    """Close ``store`` (if any) after a fault; closing a broken connection may fail in any way: log it."""
    if store is not None:
        try:
            store.close()
        except Exception as exc:  # sqlite3, psycopg and OS errors alike
            logger.warning("closing %s: %s", what, exc)


class Recorder:
    """The ledger as the service uses it; ``start`` before use, ``stop`` at shutdown."""

    def __init__(self, config: LedgerConfig, metrics: Metrics) -> None:
        parse_url(config.url)
        self.config = config
        self.metrics = metrics
        self.problem: str | None = "not started"  # why appends fail right now, or None
        self.signer: Signer | None = None
        self._store: LedgerStore | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sandboxd-ledger")
        self._stopped = False
        self._pending: list[tuple[Sequence[Item], asyncio.Future[list[int]]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._uncheckpointed = 0
        self._uncompacted = 0
        self._last_checkpoint = time.monotonic()
        self._client: httpx.AsyncClient | None = None
        self.publisher = Publisher([])

    @property
    def origin(self) -> str:
        return self.config.origin

    async def start(self) -> None:
        """Load the key (a bad key file fails startup), open the store, start the checkpoint timer and sinks."""
        if self._stopped:  # started again after a stop (an app whose lifespan runs twice)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="sandboxd-ledger")
            self._stopped = False
        try:
            self.signer = await asyncio.to_thread(load_signer, self.config.origin, self.config.key_file)
        except (OSError, NoteError, ValueError) as exc:
            raise LedgerUnavailable(f"ledger signing key {self.config.key_file}: {exc}") from exc
        sinks: list[Sink] = []
        if self.config.sink_file is not None:
            sinks.append(FileSink(self.config.sink_file))
        if self.config.sink_webhook is not None:
            self._client = httpx.AsyncClient(timeout=10.0)
            sinks.append(WebhookSink(self.config.sink_webhook, self._client))
        self.publisher = Publisher(sinks)
        self.publisher.start()
        try:
            await self.probe()
        except LedgerUnavailable as exc:
            log.error("%s; requests will get 503 until it opens", exc)
        else:
            log.info("ledger %s open at %s", self.config.origin, redact(self.config.url))
        self._timer = asyncio.create_task(self._tick(), name="ledger-checkpoints")

    def _open(self) -> LedgerStore:
        if self._store is None:
            self._store = open_store(self.config.url, origin=self.config.origin, signer=self.signer)
        return self._store

    def _drop(self) -> None:
        store, self._store = self._store, None
        close_quietly(store, "the ledger store", log)

    def _guarded(self, work: Callable[[LedgerStore], T]) -> T:
        """Run ``work`` on the ledger thread; any database fault becomes ``LedgerUnavailable``."""
        try:
            result = work(self._open())
        except LedgerUnavailable:
            raise
        except Exception as exc:  # sqlite3, psycopg and OS errors all mean "cannot record"
            self._drop()
            self.problem = f"ledger unavailable: {type(exc).__name__}: {exc}"
            raise LedgerUnavailable(self.problem) from exc
        self.problem = None
        return result

    async def call(self, work: Callable[[LedgerStore], T]) -> T:
        """Run ``work(store)`` on the ledger thread (reads for the auditor API go through here)."""
        loop = asyncio.get_running_loop()
        try:
            pending = loop.run_in_executor(self._thread, self._guarded, work)
        except RuntimeError as exc:  # the executor was shut down: the service has stopped
            raise LedgerUnavailable("ledger unavailable: the service is shutting down") from exc
        return await pending

    async def append(self, items: Sequence[Item]) -> list[int]:
        """Append ``items`` in order; return their seqs once they are durable (else ``LedgerUnavailable``).

        A body that is not JSON (or holds NaN or infinity) raises ``ValueError``/``TypeError`` here.
        """
        if not items:
            return []
        # Encoded here, so that a body that cannot be encoded fails alone, not its whole group; the store
        # splices these bytes into the entry (store.EncodedBody) instead of encoding the body again.
        encoded: list[Item] = [(kind, EncodedBody(body)) for kind, body in items]
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._pending.append((encoded, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="ledger-commit")
        return await future

    async def _flush(self) -> None:
        while self._pending:
            group: list[tuple[Sequence[Item], asyncio.Future[list[int]]]] = []
            count = 0
            while self._pending and (not group or count + len(self._pending[0][0]) <= _MAX_GROUP):
                items, future = self._pending.pop(0)
                group.append((items, future))
                count += len(items)
            flat = [item for items, _ in group for item in items]
            try:
                appended = await self.call(functools.partial(_append_many, flat))
            except LedgerUnavailable as exc:
                log.error("%s", exc)
                for _, future in group:
                    if not future.done():
                        future.set_exception(LedgerUnavailable(str(exc)))
                continue
            position = 0
            for items, future in group:
                seqs = [seq for seq, _leaf in appended[position : position + len(items)]]
                position += len(items)
                if not future.done():
                    future.set_result(seqs)
            for kind, _body in flat:
                self.metrics.ledger_entries.labels(kind=kind.value).inc()
            self._uncheckpointed += len(flat)
            if self._uncheckpointed >= self.config.checkpoint_entries:
                await self.checkpoint()
            self._uncompacted += len(flat)
            if self._uncompacted >= (COMPACT_ENTRIES if not self._pending else 4 * COMPACT_ENTRIES):
                await self.compact()

    async def compact(self) -> None:
        """Fold the store's write-ahead log into its database now (logged, not raised, if it fails)."""
        self._uncompacted = 0
        try:
            pages = await self.call(lambda store: store.compact_log())
        except LedgerUnavailable as exc:
            log.error("compacting the ledger's log failed: %s", exc)
            return
        log.debug("ledger log compacted (%d pages)", pages)

    async def checkpoint(self) -> StoredCheckpoint | None:
        """Sign a checkpoint now and hand it to the sinks; None (logged) if the store is unavailable."""
        self._uncheckpointed = 0
        self._last_checkpoint = time.monotonic()
        if self.signer is None:  # not started (an app used without its lifespan): nothing to sign with
            return None
        try:
            cp = await self.call(lambda store: store.checkpoint())
        except LedgerUnavailable as exc:
            log.error("checkpoint failed: %s", exc)
            return None
        self.metrics.ledger_checkpoint_timestamp.set(time.time())
        self.publisher.publish(checkpoint_json(self.config.origin, cp))
        log.info("ledger checkpoint at size %d", cp.tree_size)
        return cp

    async def probe(self) -> None:
        """Open the store if needed and run a trivial query; raises ``LedgerUnavailable`` (and sets ``problem``)."""
        await self.call(lambda store: store.leaf_hashes(0))

    async def _tick(self) -> None:
        """Checkpoint when due; while the ledger is unavailable, probe it every second so that readiness
        recovers without waiting for traffic (a load balancer sends none to an unready replica)."""
        period = self.config.checkpoint_seconds
        while True:
            await asyncio.sleep(min(period, 1.0))
            if self.problem is not None:
                with contextlib.suppress(LedgerUnavailable):
                    await self.probe()
            due = time.monotonic() - self._last_checkpoint >= period
            if due and self._uncheckpointed > 0:
                await self.checkpoint()

    async def stop(self) -> None:
        """Finish pending commits, checkpoint what is new, deliver to sinks, close the store."""
        if self._timer is not None:
            self._timer.cancel()
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._uncheckpointed > 0:
            await self.checkpoint()
        await self.publisher.drain(timeout=5.0)
        if self._client is not None:
            await self._client.aclose()
        await asyncio.get_running_loop().run_in_executor(self._thread, self._drop)
        self._thread.shutdown(wait=True)
        self._stopped = True
