"""The child's seccomp allowlist, compiled once into BPF in the fork-server.

The daemon sends the allowed syscall names from the policy. A few syscalls are only ever allowed
with argument checks, whatever the policy says, because their unchecked forms open a way out:

- ``open``/``openat``: read-only (``O_ACCMODE``, ``O_CREAT``, ``O_TRUNC`` and ``O_APPEND`` clear);
- ``ioctl``: only ``TCGETS`` and ``FIOCLEX``;
- ``clone``: only with ``CLONE_THREAD`` (threads, never processes);
- ``prlimit64``: only reading (``new_limit`` is NULL).

``clone3`` fails with ``ENOSYS`` so that glibc falls back to ``clone``, where flags can be checked.
Everything else kills the process, which the daemon reports as ``sandbox_violation``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from collections.abc import Iterable

from .forking import output_apart

O_ACCMODE = 0o3
O_CREAT = 0o100
O_TRUNC = 0o1000
O_APPEND = 0o2000
TCGETS = 0x5401
FIOCLEX = 0x5451
CLONE_THREAD = 0x10000

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_SOCK_FILTER_BYTES = 8
_ATTR_CTL_OPTIMIZE = 8  # SCMP_FLTATR_CTL_OPTIMIZE

CHECKED = frozenset({"open", "openat", "ioctl", "clone", "clone3", "prlimit64"})


def compile_filter(allowed: Iterable[str]) -> bytes:
    """Compile the allowlist to raw BPF (``struct sock_filter[]``) with libseccomp."""
    import pyseccomp as sc  # noqa: PLC0415 - imported here so the daemon side never needs libseccomp

    names = sorted(set(allowed))
    try:
        filt = sc.SyscallFilter(sc.KILL_PROCESS)
    except OSError:
        # gVisor's seccomp reports an API level without KILL_PROCESS. KILL (the thread) is
        # equivalent here: children cannot start threads (RLIMIT_NPROC is 0).
        filt = sc.SyscallFilter(sc.KILL)
    with contextlib.suppress(Exception):  # libseccomp >= 2.5: a binary tree instead of a linear chain
        filt.set_attr(_ATTR_CTL_OPTIMIZE, 2)
    write_mask = O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND
    for name in names:
        if name in CHECKED:
            continue
        try:
            filt.add_rule(sc.ALLOW, name)
        except (ValueError, OSError, RuntimeError) as exc:  # unknown on this architecture
            raise ValueError(f"cannot allow syscall {name!r}: {exc}") from exc
    if "open" in names:
        filt.add_rule(sc.ALLOW, "open", sc.Arg(1, sc.MASKED_EQ, write_mask, 0))
    if "openat" in names:
        filt.add_rule(sc.ALLOW, "openat", sc.Arg(2, sc.MASKED_EQ, write_mask, 0))
    if "ioctl" in names:
        for request in (TCGETS, FIOCLEX):
            filt.add_rule(sc.ALLOW, "ioctl", sc.Arg(1, sc.EQ, request))
    if "clone" in names:
        filt.add_rule(sc.ALLOW, "clone", sc.Arg(0, sc.MASKED_EQ, CLONE_THREAD, CLONE_THREAD))
    if "prlimit64" in names:
        filt.add_rule(sc.ALLOW, "prlimit64", sc.Arg(2, sc.EQ, 0))
    filt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    fd = os.memfd_create("sandboxd-bpf")
    try:
        with os.fdopen(os.dup(fd), "rb") as handle:
            filt.export_bpf(handle)
        size = os.lseek(fd, 0, os.SEEK_END)
        os.lseek(fd, 0, os.SEEK_SET)
        program = os.read(fd, size)
    finally:
        os.close(fd)
    if not program or len(program) % _SOCK_FILTER_BYTES:
        raise ValueError("libseccomp exported an empty or malformed BPF program")
    return program


def compile_filter_apart(allowed: Iterable[str]) -> bytes:
    """:func:`compile_filter` in a short-lived child process, so its imports stay out of this one.

    ``pyseccomp`` imports ``ctypes.util`` (which runs ``ldconfig``), ``typing``, ``subprocess``,
    ``shutil``, ``tempfile``, ``bz2``, ``lzma`` and more: 1.5 MB of heap that the fork-server would
    otherwise carry into every child, whose fork and exit cost grows with it (docs/design.md, "The
    fork-server's heap"). The child writes a status byte (0: the program follows; 1: why it failed,
    raised here as ``ValueError``), then exits.
    """
    names = sorted(set(allowed))

    def work() -> bytes:
        try:
            return b"\x00" + compile_filter(names)
        except Exception as exc:  # any failure, reported to the parent as it would have been raised
            why = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            return b"\x01" + why.encode("utf-8", "replace")

    reply, _ = output_apart(os.fork, work)
    if reply[:1] == b"\x00" and len(reply) > 1:
        return reply[1:]
    raise ValueError(
        reply[1:].decode("utf-8", "replace") if reply else "the seccomp compiler exited silently"
    )


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


class FilterLoader:
    """Holds the compiled program and installs it in the calling process with two prctl calls."""

    def __init__(self, program: bytes) -> None:
        self.program = program
        self._buffer = ctypes.create_string_buffer(program, len(program))
        self._prog = _SockFprog(len(program) // _SOCK_FILTER_BYTES, ctypes.addressof(self._buffer))
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._prctl = self._libc.prctl
        self._prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong)
        self._prctl.restype = ctypes.c_int
        self._prog_ref = ctypes.byref(self._prog)

    @property
    def fprog_address(self) -> int:
        """The address of the program's ``struct sock_fprog`` (for spare.c)."""
        return ctypes.addressof(self._prog)

    def prctl(self, option: int, arg: int) -> int:
        return int(self._prctl(option, arg, None, 0, 0))

    def set_no_new_privs(self) -> None:
        if self._prctl(_PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")

    def load(self) -> None:
        """Install the filter; no_new_privs must be set first."""
        if self._prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(self._prog), 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")
