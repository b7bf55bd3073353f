"""``fork(2)`` without CPython's at-fork machinery, for the fork-server's children.

``os.fork()`` wraps the system call in ``PyOS_BeforeFork``/``PyOS_AfterFork_*``: it takes the import
lock, runs every ``os.register_at_fork`` hook (``random`` reseeds its generator, ``threading``
rebuilds its bookkeeping, ...) and re-creates the runtime's locks in the child. Every page those
writes touch is a copy-on-write fault in every child. Measured in the runner image on the AZR
workload: 344 faults and 1.5-1.7 ms of child CPU per program with ``os.fork()``, 232 faults and
1.05-1.1 ms with the bare call.

The bare call is only correct in a process with one thread: then no lock can be held by a thread
that is missing in the child, and the GIL is held by the one thread that continues there. So
the fork-server asks :meth:`Forker.single_threaded` before each burst of forks and otherwise uses
``os.fork()``.
Nothing the skipped hooks do is needed by a child: it reseeds ``random`` (and numpy) itself
before model code runs (``child._reseed``) and never starts threads (``RLIMIT_NPROC`` is 0).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

from .private import write_all

_TASKS = "/proc/self/task"


def output_apart(fork: Callable[[], int], work: Callable[[], bytes]) -> tuple[bytes, int]:
    """Run ``work`` in a short-lived child made by ``fork`` (0 in the child, as ``os.fork``) and return
    the bytes it returned, read through a pipe, with the child's exit code: 0 once they are written, 1 if
    ``work`` raised (then there are none), minus the signal if one killed it."""
    read_end, write_end = os.pipe()
    try:
        pid = fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        raise
    if pid == 0:  # pragma: no cover - the child never returns from here
        status = 1
        try:
            os.close(read_end)
            write_all(write_end, [work()])
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    chunks = []
    try:
        while chunk := os.read(read_end, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    return b"".join(chunks), os.waitstatus_to_exitcode(status)


class Forker:
    """Forks with the bare libc call while the process is single-threaded, else with ``os.fork()``."""

    def __init__(self) -> None:
        libc = ctypes.PyDLL(None, use_errno=True)  # PyDLL: the GIL stays held across the call
        self._fork = libc.fork
        self._fork.argtypes = ()
        self._fork.restype = ctypes.c_int

    @staticmethod
    def single_threaded() -> bool:
        try:
            return len(os.listdir(_TASKS)) == 1
        except OSError:  # no /proc: assume the worst
            return False

    def fork(self, bare: bool) -> int:
        """Like ``os.fork()``: 0 in the child, the child's pid in the parent; raises OSError.

        ``bare`` is the caller's :meth:`single_threaded`, asked once per burst of forks.
        """
        if not bare:
            return os.fork()
        pid = int(self._fork())
        if pid < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))
        return pid
