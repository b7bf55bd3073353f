"""The native spare path (``spare.c``): fork a spare, and in it wait for its run and lock down, in C.

The image build compiles ``spare.c`` into ``_spare.so`` beside this file (sandboxd/image.py). Where it
is missing or does not load (an image built on a host without a C compiler), :func:`load_native` returns
``None`` and the fork-server forks spares and locks them down in Python (``forkserver._spare``,
``child.lock_down``): the same steps in the same order, only slower. ``hello`` says which path runs.

The run reaches a native spare as one control message: a fixed binary header (what C needs: the
rlimits and the lengths) and the scratch path, with the job memfd (and the stdin memfd) attached.
Model text is never in it. What Python needs after the lock-down (the run's request: nonce, encoder
options, the job's size) is in the job memfd's first page, as on the Python path (``child.JobFile``).
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import errno
import os
import socket
import struct

from .rlimits import child_rlimits

TYPE_CHECKING = False  # typing itself is not imported: see child.ChildFds
if TYPE_CHECKING:
    from typing import Any

ABI = 4
WARM = 1 << 31  # in the spawner's count: warm spares (spare.c WARM_SPARES)
JOB_FD = 4  # where spare.c leaves the job memfd
_HEADER = struct.Struct("<IIQQQQQIIQ")  # spare.c: H_MAGIC ... H_JOB_BYTES, 64 bytes
LIBRARY = os.path.join(os.path.dirname(__file__), "_spare.so")  # no pathlib: see child.ChildFds


class NativeSpares:
    """``sbx_fork_spare`` and ``sbx_spawner_serve``, and the buffer of the fork-server's ends."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._fork = library.sbx_fork_spare
        self._fork.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int)
        self._fork.restype = ctypes.c_int
        self._touch = library.sbx_set_touch
        self._touch.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
        self._touch.restype = None
        self.touch_pages: array.array[int] | None = None  # kept alive: the spares' C code reads it
        self._serve = library.sbx_spawner_serve
        self._serve.argtypes = (ctypes.c_int, ctypes.c_void_p)
        self._serve.restype = ctypes.c_int
        self.spawner = True  # make spares through a spawner (Spawner), not from the fork-server itself
        self._ends = (ctypes.c_int * 4)()

    def set_touch(self, pages: array.array[int]) -> None:
        """The pages a warm spare writes while it waits (``spare.c`` ``touch``): page addresses, as
        ``array('Q')``, in this process's image. Set before the spawner starts, which inherits them."""
        self.touch_pages = pages
        address, count = pages.buffer_info()
        self._touch(address, count)

    def fork(self, fprog: int, warm: bool = False) -> tuple[int, tuple[int, int, int, int]]:
        """Fork a spare: (pid, (control, stdout, stderr, frame)) in the parent; raises OSError.

        In the child this returns ``(0, ...)`` only after the lock-down, its run's job memfd on
        :data:`JOB_FD`. ``fprog`` is the address of the seccomp program's ``struct sock_fprog``.
        """
        pid = int(self._fork(ctypes.addressof(self._ends), fprog, 1 if warm else 0))
        if pid < 0:
            raise OSError(-pid, os.strerror(-pid))
        values = self._ends
        return pid, (values[0], values[1], values[2], values[3])

    def serve_spawner(self, sock: int, fprog: int) -> None:
        """Become the spawner (``sbx_spawner_serve``). Returns only in a spare it made, locked down."""
        self._serve(sock, fprog)


_RECORD = struct.Struct("<i")
_ENDS_SPACE = socket.CMSG_SPACE(4 * 4)


class Spawner:
    """The fork-server's end of a spawner (``sbx_spawner_serve`` in spare.c): asks it for spares.

    The spares are the fork-server's own children (CLONE_PARENT), forked from the spawner's image,
    which is the fork-server's image as it was after its warm-up and is never written afterwards.
    """

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock

    def greeted(self) -> bool:
        """Read the spawner's hello: whether its spares will be our children (CLONE_PARENT works; not
        under gVisor). Reaps the probe it made to find out. False: close it and fork spares ourselves."""
        try:
            data = self.sock.recvmsg(_RECORD.size)[0]  # not recv(): recvfrom, which the container refuses
        except OSError:
            return False
        if len(data) != _RECORD.size:
            return False
        (probe,) = _RECORD.unpack(data)
        if probe <= 0:
            return False
        with contextlib.suppress(ChildProcessError):
            os.waitpid(probe, 0)
        return True

    def fork(
        self, count: int, warm: bool = False
    ) -> tuple[list[tuple[int, tuple[int, int, int, int]]], OSError | None]:
        """Up to ``count`` spares: (pid, (control, stdout, stderr, frame)) each, and the error that cut
        the burst short, if any (EPIPE: the spawner is gone). ``warm`` spares write the touch pages."""
        made: list[tuple[int, tuple[int, int, int, int]]] = []
        try:
            # sendmsg, not send(): send() is sendto, which the container's seccomp profile refuses
            self.sock.sendmsg([struct.pack("<I", count | (WARM if warm else 0))])
            for _ in range(count):
                data, ancillary, _, _ = self.sock.recvmsg(_RECORD.size, _ENDS_SPACE)
                if len(data) != _RECORD.size:
                    return made, OSError(errno.EPIPE, "the spawner is gone")
                (pid,) = _RECORD.unpack(data)
                if pid < 0:
                    return made, OSError(-pid, os.strerror(-pid))
                fds = array.array("i")
                for level, kind, payload in ancillary:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                if len(fds) != 4:
                    for fd in fds:
                        os.close(fd)
                    return made, OSError(errno.EPROTO, "a spare came without its four ends")
                made.append((pid, (fds[0], fds[1], fds[2], fds[3])))
        except OSError as exc:
            return made, exc
        return made, None

    def close(self) -> None:
        """EOF ends the spawner; reap it (it is our child)."""
        self.sock.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def control_message(
    request: dict[str, Any], scratch: str, job_bytes: int, has_stdin: bool, base_vm_bytes: int
) -> bytes:
    """The control message for a native spare: the header ``spare.c`` reads, then the scratch path."""
    path = scratch.encode()
    rlimits = child_rlimits(request["limits"], base_vm_bytes)
    header = _HEADER.pack(ABI, 1 if has_stdin else 0, *rlimits, len(path), 0, job_bytes)
    return header + path


def from_environment() -> NativeSpares | None:
    """The fork-server's choice, for tests and benchmarks that compare the paths:
    ``SANDBOXD_NATIVE_SPARES=0`` forces the Python path, ``direct`` (or ``direct:PATH``) the native path
    without a spawner, a path loads that object; by default the image's ``_spare.so`` is used, with a
    spawner, if it loads."""
    setting = os.environ.get("SANDBOXD_NATIVE_SPARES", "")
    if setting == "0":
        return None
    direct = setting == "direct" or setting.startswith("direct:")
    path = setting.removeprefix("direct").removeprefix(":") if direct else setting
    native = load_native(path or LIBRARY)
    if native is not None and direct:
        native.spawner = False
    return native


def load_native(path: str | os.PathLike[str] = LIBRARY) -> NativeSpares | None:
    """The native path, or ``None`` when ``_spare.so`` is missing, does not load, or has another ABI."""
    try:
        library = ctypes.PyDLL(str(path))  # PyDLL: the GIL stays held, as across os.fork()
        abi = library.sbx_abi
        abi.restype = ctypes.c_int
        if abi() != ABI:
            return None
        return NativeSpares(library)
    except (OSError, AttributeError):
        return None
