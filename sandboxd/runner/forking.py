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

_TASKS = "/proc/self/task"


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
