"""Decode stored rows as canonical entries, in worker processes when the log is large.

Checking that a row's bytes are a canonical entry (parse, then re-encode and compare) is the costly part of
``sandboxd ledger verify``, and each row can be checked on its own (leaf hashes too, so workers compute them).
``decoded`` hands chunks of rows to a
pool of worker processes (forked, or ``spawn``ed when other threads run, as in the daemon) and yields the results in row order, keeping only
a few chunks in flight; the tree itself is still computed by the caller, in order, in one pass. Below
``PARALLEL_MIN_ROWS`` rows, or with ``workers=1``, everything runs in the calling process.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice

from . import merkle
from .entry import Entry, EntryError
from .store import StoredEntry

CHUNK_ROWS = 4096
PARALLEL_MIN_ROWS = 50_000  # below this, starting workers costs more than it saves
Decoded = int | str  # the entry's own seq, or why its bytes are not a canonical entry
_HASH = 32  # bytes per leaf hash


def decode_one(data: bytes) -> Decoded:
    """The seq inside ``data``, or the ``EntryError`` message if it is not a canonical entry."""
    try:
        return Entry.decode(data).seq
    except EntryError as exc:
        return str(exc)


def decode_chunk(chunk: list[bytes]) -> tuple[bytes, list[Decoded]]:
    """The unit of work a worker gets: each row's leaf hash (packed, 32 bytes each) and ``decode_one``."""
    return b"".join(map(merkle.leaf_hash, chunk)), [decode_one(data) for data in chunk]


def default_workers(rows: int) -> int:
    """How many worker processes to use for ``rows`` rows: none (1) for small logs, else one per CPU."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 1 if rows < PARALLEL_MIN_ROWS else max(1, cpus)


def decoded(rows: Iterable[StoredEntry], workers: int = 1) -> Iterator[tuple[StoredEntry, Decoded, bytes]]:
    """Each row with its decoding and recomputed leaf hash, in order; ``workers > 1`` uses that many processes."""
    if workers <= 1:
        for row in rows:
            yield row, decode_one(row.data), merkle.leaf_hash(row.data)
        return
    # fork is cheap and needs no importable __main__, but is unsafe once other threads exist (the daemon).
    context = multiprocessing.get_context("fork" if threading.active_count() == 1 else "spawn")
    iterator = iter(rows)
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        pending: deque[tuple[list[StoredEntry], Future[tuple[bytes, list[Decoded]]]]] = deque()
        while True:
            while len(pending) < 2 * workers:
                chunk = list(islice(iterator, CHUNK_ROWS))
                if not chunk:
                    break
                pending.append((chunk, pool.submit(decode_chunk, [row.data for row in chunk])))
            if not pending:
                return
            chunk, future = pending.popleft()
            packed, found = future.result()
            leaves = [packed[i : i + _HASH] for i in range(0, len(packed), _HASH)]
            yield from zip(chunk, found, leaves, strict=True)
