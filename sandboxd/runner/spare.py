"""The native spare path (``spare.c``): fork a spare, and in it wait for its run and lock down, in C.

The image build compiles ``spare.c`` into ``_spare.so`` beside this file (sandboxd/image.py). Where it
is missing or does not load (an image built on a host without a C compiler), :func:`load_native` returns
``None`` and the fork-server forks spares and locks them down in Python (``forkserver._spare``,
``child.lock_down``): the same steps in the same order, only slower. ``hello`` says which path runs.

The run reaches a native spare as one control message: a fixed binary header (what C needs: the
rlimits and the lengths), the scratch path, and the request JSON that Python reads after the
lock-down. Model text is never in it: the job and stdin travel as memfds, as on the Python path.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import struct
from pathlib import Path
from typing import Any

ABI = 1
JOB_FD = 4  # where spare.c leaves the job memfd
_HEADER = struct.Struct("<IIQQQQQIIQ")  # spare.c: H_MAGIC ... H_JOB_BYTES, 64 bytes
_REQUEST_CAP = 1 << 15  # the request JSON (limits, nonce, encoder options, job size): under 1 KiB in practice
LIBRARY = Path(__file__).with_name("_spare.so")


class NativeSpares:
    """``sbx_fork_spare`` and the buffers it fills, allocated once in the fork-server."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._fork = library.sbx_fork_spare
        self._fork.argtypes = (ctypes.c_void_p,) * 3 + (ctypes.c_uint, ctypes.c_void_p)
        self._fork.restype = ctypes.c_int
        self._ends = (ctypes.c_int * 4)()
        self._request = ctypes.create_string_buffer(_REQUEST_CAP)
        self._length = ctypes.c_uint(0)
        self._args = (
            ctypes.addressof(self._ends),
            ctypes.addressof(self._request),
            _REQUEST_CAP,
            ctypes.addressof(self._length),
        )

    def fork(self, fprog: int) -> tuple[int, tuple[int, int, int, int]]:
        """Fork a spare: (pid, (control, stdout, stderr, frame)) in the parent; raises OSError.

        In the child this returns ``(0, ...)`` only after the lock-down; then call :meth:`received`.
        ``fprog`` is the address of the seccomp program's ``struct sock_fprog``.
        """
        ends, request, cap, length = self._args
        pid = int(self._fork(ends, fprog, request, cap, length))
        if pid < 0:
            raise OSError(-pid, os.strerror(-pid))
        values = self._ends
        return pid, (values[0], values[1], values[2], values[3])

    def received(self) -> tuple[dict[str, Any], int]:
        """In a locked-down native spare: the run's request and its job's size."""
        request, job_bytes = json.loads(self._request.raw[: self._length.value])
        return request, job_bytes


def control_message(
    request: dict[str, Any], scratch: str, job_bytes: int, has_stdin: bool, base_vm_bytes: int
) -> bytes:
    """The control message for a native spare: what ``spare.c`` reads, then the JSON Python reads."""
    limits = request["limits"]
    cpu = max(1, math.ceil(float(limits["cpu_time_seconds"])))
    path = scratch.encode()
    body = json.dumps([request, job_bytes]).encode("ascii")
    header = _HEADER.pack(
        ABI,
        1 if has_stdin else 0,
        cpu,
        cpu + 1,
        base_vm_bytes + int(limits["memory_bytes"]),
        int(limits.get("file_size_bytes", 0)),
        int(limits.get("open_files", 64)),
        len(path),
        len(body),
        job_bytes,
    )
    return header + path + body


def from_environment() -> NativeSpares | None:
    """The fork-server's choice: ``SANDBOXD_NATIVE_SPARES=0`` forces the Python path (tests and benchmarks
    compare both), a path loads that object, and by default the image's ``_spare.so`` is used if it loads."""
    setting = os.environ.get("SANDBOXD_NATIVE_SPARES", "")
    if setting == "0":
        return None
    return load_native(Path(setting) if setting else LIBRARY)


def load_native(path: Path = LIBRARY) -> NativeSpares | None:
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
