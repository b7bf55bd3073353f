"""Memory that forked children never inherit, for every byte of model text the fork-server moves.

A child is forked from the fork-server, so it starts with a copy of the fork-server's memory,
freed blocks included. If the fork-server ever held an earlier run's code, stdin or output in
ordinary memory, a later child (a later request, under a container-reusing policy) could scan its
own address space and read it. So the fork-server holds such bytes only in anonymous mappings
advised ``MADV_WIPEONFORK`` (a child sees zero pages there) or, where the kernel lacks that,
``MADV_DONTFORK`` (a child has no mapping there at all). It reads into them with ``readv`` and
writes out of them with ``write``/``writev``, so the bytes never become Python objects.
If neither advice works, the fork-server refuses to start (fail closed).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import select
from collections.abc import Sequence

from .protocol import PREFIX, check_prefix, decode_header

_MADV_WIPEONFORK = getattr(mmap, "MADV_WIPEONFORK", 18)
_MADV_DONTFORK = getattr(mmap, "MADV_DONTFORK", 10)
_IOV_MAX = 1024


class PrivateMemory:
    """Makes private buffers; remembers that the address space grew (children's RLIMIT_AS base)."""

    def __init__(self) -> None:
        self.advice: str | None = None  # "wipeonfork" | "dontfork", set by the first buffer
        self.grew = False

    def buffer(self, size: int) -> PrivateBuffer:
        size = max(mmap.PAGESIZE, -(-size // mmap.PAGESIZE) * mmap.PAGESIZE)
        area = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        try:
            self.advice = _advise(area, self.advice)
        except OSError:
            area.close()
            raise
        self.grew = True
        return PrivateBuffer(area)


def _advise(area: mmap.mmap, known: str | None) -> str:
    if known in (None, "wipeonfork"):
        try:
            area.madvise(_MADV_WIPEONFORK)
            return "wipeonfork"
        except OSError:
            if known == "wipeonfork":
                raise
    try:
        area.madvise(_MADV_DONTFORK)
    except OSError as exc:
        raise OSError(exc.errno, "neither MADV_WIPEONFORK nor MADV_DONTFORK is supported") from exc
    return "dontfork"


class PrivateBuffer:
    """One private mapping and a writable view of it."""

    def __init__(self, area: mmap.mmap) -> None:
        self.area = area
        self.view = memoryview(area)

    def __len__(self) -> int:
        return len(self.view)

    def close(self) -> None:
        """Unmap now, or, while views of it are still alive, when the last one goes."""
        with contextlib.suppress(BufferError):
            self.view.release()
            self.area.close()


class Inbox:
    """A message stream read into private memory; only headers are decoded."""

    def __init__(self, memory: PrivateMemory, capacity: int = 1 << 20) -> None:
        self.memory = memory
        self.buffer = memory.buffer(capacity)
        self.start = 0  # first byte not yet handed out
        self.end = 0  # one past the last byte read

    def fill(self, fd: int) -> int:
        """Read what ``fd`` has (0 at EOF); raises BlockingIOError when it has nothing."""
        if self.start == self.end:
            self.start = self.end = 0
        elif self.start:
            self.buffer.area.move(0, self.start, self.end - self.start)
            self.end -= self.start
            self.start = 0
        if self.end == len(self.buffer):
            self._grow()
        count = os.readv(fd, [self.buffer.view[self.end :]])
        self.end += count
        return count

    def _grow(self) -> None:
        needed = len(self.buffer) * 2
        if self.end >= PREFIX.size:
            needed = max(needed, check_prefix(*PREFIX.unpack_from(self.buffer.view, 0)))
        bigger = self.memory.buffer(needed)
        bigger.view[: self.end] = self.buffer.view[: self.end]
        self.buffer.close()
        self.buffer = bigger

    def messages(self) -> list[tuple[dict[str, object], memoryview, memoryview]]:
        """Complete messages as (header, body, whole message); the views last until the next fill."""
        found = []
        view = self.buffer.view
        while self.end - self.start >= PREFIX.size:
            header_bytes, body_bytes = PREFIX.unpack_from(view, self.start)
            size = check_prefix(header_bytes, body_bytes)
            if self.end - self.start < size:
                break
            body_at = self.start + PREFIX.size + header_bytes
            header = decode_header(bytes(view[self.start + PREFIX.size : body_at]))
            found.append((header, view[body_at : self.start + size], view[self.start : self.start + size]))
            self.start += size
        return found

    def close(self) -> None:
        self.buffer.close()


def write_all(fd: int, parts: Sequence[bytes | memoryview]) -> None:
    """Write every part in order with as few ``writev`` calls as the fd allows."""
    pending = [memoryview(part).cast("B") for part in parts if len(part)]
    while pending:
        try:
            written = os.writev(fd, pending[:_IOV_MAX])
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
            continue
        while written:
            if written >= len(pending[0]):
                written -= len(pending[0])
                pending.pop(0)
            else:
                pending[0] = pending[0][written:]
                written = 0
