"""Checkpoint sinks: copies of each signed checkpoint held outside the service (a file, a webhook).

Tamper evidence needs a copy of the checkpoints that whoever controls the database cannot rewrite.
``Publisher`` queues each new checkpoint and a background task hands it to every sink, retrying failures
with exponential backoff. Publishing never blocks a request: the queue is bounded, and when it is full
the oldest checkpoint is dropped (a later checkpoint covers it, and consistency proofs link the two).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from pathlib import Path
from typing import Any, Protocol

import httpx

from .store import StoredCheckpoint

log = logging.getLogger(__name__)


def checkpoint_json(origin: str, cp: StoredCheckpoint) -> dict[str, Any]:
    """The JSON form of a checkpoint that sinks and the API use."""
    return {
        "origin": origin,
        "tree_size": cp.tree_size,
        "root_hash": base64.b64encode(cp.root_hash).decode(),
        "timestamp": cp.timestamp,
        "note": cp.note,
    }


class Sink(Protocol):
    """Somewhere a checkpoint is copied to; ``push`` raises on failure (the publisher retries)."""

    name: str

    async def push(self, checkpoint: dict[str, Any]) -> None: ...


class FileSink:
    """Appends each checkpoint as one JSON line to a file, fsync'd (mode 0600 when created)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = f"file:{path}"

    def _write(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    async def push(self, checkpoint: dict[str, Any]) -> None:
        line = (json.dumps(checkpoint, sort_keys=True, ensure_ascii=True) + "\n").encode()
        await asyncio.to_thread(self._write, line)


class WebhookSink:
    """POSTs each checkpoint as JSON; any answer other than 2xx is a failure."""

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.url = url
        self.name = f"webhook:{url}"
        self._client = client

    async def push(self, checkpoint: dict[str, Any]) -> None:
        response = await self._client.post(self.url, json=checkpoint)
        response.raise_for_status()


class Publisher:
    """Delivers checkpoints to sinks in the background, in order, with retries."""

    def __init__(
        self, sinks: list[Sink], *, attempts: int = 5, backoff_seconds: float = 0.5, queue_size: int = 64
    ) -> None:
        self.sinks = sinks
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.failures = 0  # deliveries given up after every attempt
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.sinks and self._task is None:
            self._task = asyncio.create_task(self._run(), name="ledger-sinks")

    def publish(self, checkpoint: dict[str, Any]) -> None:
        """Queue a checkpoint for every sink; never waits."""
        if not self.sinks:
            return
        if self._queue.full():
            dropped = self._queue.get_nowait()
            log.warning("checkpoint sinks are behind: dropped checkpoint of size %s", dropped["tree_size"])
        self._queue.put_nowait(checkpoint)

    async def _run(self) -> None:
        while True:
            checkpoint = await self._queue.get()
            for sink in self.sinks:
                await self._deliver(sink, checkpoint)
            self._queue.task_done()

    async def _deliver(self, sink: Sink, checkpoint: dict[str, Any]) -> None:
        delay = self.backoff_seconds
        for attempt in range(1, self.attempts + 1):
            try:
                await sink.push(checkpoint)
            except (OSError, httpx.HTTPError) as exc:
                log.warning(
                    "checkpoint sink %s failed (attempt %d/%d): %s", sink.name, attempt, self.attempts, exc
                )
                if attempt < self.attempts:
                    await asyncio.sleep(delay)
                    delay *= 2
            else:
                return
        self.failures += 1
        log.error("checkpoint sink %s: gave up on checkpoint of size %s", sink.name, checkpoint["tree_size"])

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for queued checkpoints to be delivered, then stop."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            log.warning("checkpoint sinks: %d checkpoints undelivered at shutdown", self._queue.qsize())
        self._task.cancel()
        self._task = None
