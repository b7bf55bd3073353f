"""The forked child: lock the process down, run one job, write one result frame, exit.

The order matters and is the security boundary of the fork-server (DESIGN.md §2.2):
job → fds → session → scratch dir → random state → rlimits → no_new_privs → seccomp → model code.
A spare forked by ``spare.c`` (the native path) has done session → fds → scratch dir → rlimits →
no_new_privs → seccomp in C before :func:`run_native` starts; it then reads its job from fd 4, closes
it and reseeds before model code.
The job (the model's text) is read from a memfd after the fork: the fork-server never held it in
memory that a child inherits (see :mod:`.private`).
Nothing here returns: the child always leaves through ``os._exit``.
"""

from __future__ import annotations

import _random
import contextlib
import io
import json
import json.encoder
import marshal
import os
import random
import resource
import signal
import sys
from collections.abc import Callable

from . import jobs
from .encode import EncodeLimitError, Encoder
from .protocol import HEADER, RESULT_FD
from .rlimits import child_rlimits
from .spare import JOB_FD

__all__ = ["RESULT_FD", "ChildFds", "ChildStreams", "Preparation", "run", "vm_size_bytes"]
from .syscalls import FilterLoader

TYPE_CHECKING = False  # typing itself is not imported: see child.ChildFds
if TYPE_CHECKING:
    from typing import Any

_write = os.write
_exit = os._exit
_escape_json: Callable[[str], str] = json.encoder.encode_basestring_ascii
# Each distinct page a child writes is a copy-on-write fault (2-4 µs here), so lock_down calls the C
# functions underneath signal.signal (which converts through enum) and random.seed directly.
_SIGPIPE = int(signal.SIGPIPE)
_SIG_IGN = int(signal.SIG_IGN)
_seed = _random.Random.seed
_c_signal: Callable[[int, int], object] = sys.modules["_signal"].signal  # under signal.signal
# The interpreter's own traceback printer (C), instead of the traceback module: that module (with
# linecache, tokenize and textwrap) is about 280 KB of heap that every fork copies and every exit tears
# down, for the few runs that raise. The text is the same (tests/test_api.py).
_print_exception = sys.__excepthook__
EXIT_SETUP_FAILED = 121
EXIT_FRAME_FAILED = 122


# The runner imports neither dataclasses nor typing: dataclasses imports inspect (and ast, dis, tokenize),
# typing is 1.5 MB on its own, and every fork copies page-table entries for the fork-server's heap and
# every exit tears them down again (docs/design.md, "The fork-server's heap"). Hence plain classes.
class ChildFds:
    """Descriptors the parent prepared; they land on 0, 1, 2 and RESULT_FD in the child.

    ``stdin`` None keeps fd 0 as it is in every fork-server: ``/dev/null``. ``job`` is the run's job
    memfd (:func:`read_job`); the child reads it and closes it.
    """

    __slots__ = ("job", "result", "stderr", "stdin", "stdout")

    def __init__(self, stdin: int | None, stdout: int, stderr: int, result: int, job: int) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.result = result
        self.job = job


_READ_BYTES = 1 << 16  # a job memfd is read in chunks this large (an AZR job is 1-10 KiB)


def read_job(fd: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's own fields (nonce, encoder options) and its job, from the job memfd.

    The memfd holds the job exactly as the daemon sent it: ``marshal`` of ``[run, job]``, with the code
    objects the daemon compiled inside (sandboxd/run.py). marshal, not JSON, because the child decodes
    it in one C call, where ``json.loads`` (and base64 for the bytecode) runs Python code whose writes
    copy-on-write fault pages in a fresh fork: about 100 more faults and 0.4 ms of the child's CPU per
    AZR run here. Only the daemon writes it and only the child reads it.
    """
    data = b""
    while True:  # to the end of the memfd: only the job is in it
        chunk = os.pread(fd, _READ_BYTES, len(data))
        data += chunk
        if len(chunk) < _READ_BYTES:
            break
    run, job = marshal.loads(data)  # noqa: S302 - the daemon's own encoding (run.py): model text only in its strings
    if type(run) is not dict or type(job) is not dict:
        raise TypeError("job is not an object")
    return run, job


def _set_rlimits(limits: dict[str, Any], base_vm_bytes: int) -> None:
    cpu_soft, cpu_hard, address_space, file_size, open_files = child_rlimits(limits, base_vm_bytes)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_soft, cpu_hard))
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def vm_size_bytes() -> int:
    """The address space of this process; the parent measures it once, children inherit it."""
    with open("/proc/self/status", "rb") as status:
        for line in status:
            if line.startswith(b"VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _reseed() -> None:
    generator: Any = random._inst  # what random.seed() seeds
    _seed(generator, int.from_bytes(os.urandom(32), "little"))
    generator.gauss_next = None  # as random.seed() does
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(int.from_bytes(os.urandom(4), "little"))  # ~10x cheaper than seed()


class ChildStreams:
    """Text streams on fds 0, 1 and 2, made once in the fork-server and never written there.

    The fork-server installs them as ``sys.std*`` for good after its warm-up, so children inherit them
    installed; after ``dup2`` in the child they wrap the child's pipes. Creating them per child would
    cost about 150 µs of every run, installing them per child about 25 page faults.
    """

    __slots__ = ("stderr", "stdin", "stdout")

    def __init__(self, stdin: io.TextIOWrapper, stdout: io.TextIOWrapper, stderr: io.TextIOWrapper) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr

    @classmethod
    def create(cls) -> ChildStreams:
        return cls(
            stdin=open(0, encoding="utf-8", errors="replace", closefd=False),
            stdout=open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False),
            stderr=open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False),
        )

    def install(self) -> None:
        sys.stdin, sys.stdout, sys.stderr = self.stdin, self.stdout, self.stderr
        sys.__stdin__, sys.__stdout__, sys.__stderr__ = self.stdin, self.stdout, self.stderr  # type: ignore[misc]


class Preparation:
    """What the fork-server computes once and every child reuses."""

    __slots__ = ("base_vm_bytes", "loader", "streams")

    def __init__(self, loader: FilterLoader, streams: ChildStreams, base_vm_bytes: int) -> None:
        self.loader = loader
        self.streams = streams
        self.base_vm_bytes = base_vm_bytes

    def measured(self, base_vm_bytes: int) -> Preparation:
        """The same, with the fork-server's address space measured again."""
        return Preparation(self.loader, self.streams, base_vm_bytes)


def lock_down(fds: ChildFds, scratch: str, limits: dict[str, Any], prep: Preparation) -> None:
    """Everything between fork and model code. Raises if any step fails."""
    os.setsid()
    _c_signal(_SIGPIPE, _SIG_IGN)  # the usual CPython behaviour for model code (C level: no enum)
    if fds.stdin is not None:
        os.dup2(fds.stdin, 0)
    os.dup2(fds.stdout, 1)
    os.dup2(fds.stderr, 2)
    os.dup2(fds.result, RESULT_FD)
    os.closerange(RESULT_FD + 1, 1 << 16)
    os.chdir(scratch)
    _reseed()
    _set_rlimits(limits, prep.base_vm_bytes)
    prep.loader.set_no_new_privs()
    prep.loader.load()


def _frame(nonce: str, outcome: jobs.Outcome, encoder: Encoder) -> bytes:
    try:
        values = [encoder.to_json(value) for value in outcome.values]
        error = None
    except (EncodeLimitError, RecursionError, MemoryError, ValueError) as exc:
        values, error = [], str(exc) or type(exc).__name__
    body = (
        '{"v":1,"nonce":'
        + _escape_json(nonce)
        + ',"outcome":'
        + _escape_json(outcome.outcome)
        + ',"exc_type":'
        + ("null" if outcome.exc_type is None else _escape_json(outcome.exc_type))
        + ',"exc_builtin":'
        + ("true" if outcome.exc_builtin else "false")
        + ',"exit_code":'
        + int.__repr__(outcome.exit_code)
        + ',"non_canonical":'
        + ("true" if encoder.non_canonical else "false")
        + ',"encode_error":'
        + ("null" if error is None else _escape_json(error))
        + ',"values":['
        + ",".join(values)
        + "]}"
    ).encode("ascii")
    header: bytes = HEADER.pack(len(body))
    return header + body


_WARM_UP_JOBS: tuple[dict[str, Any], ...] = (
    {
        "kind": "script",
        "code": "import collections, math\nx = sorted([3, 1, 2])\nprint(repr(x) == repr(x), repr(x))",
    },
    {
        "kind": "calls",
        "imports": ["import math"],
        "program": "def f(a):\n    return [a, (a, 1.5), {a: None}, {a}, str(a), b'x']",
        "calls": ["1", "'s'"],
        "repeat": 2,
        "expressions": [{"text": "[1, 'a']", "imports": []}],
        "probes": ["0", "''"],
    },
)


def _compiled(text: Any, name: str, mode: str) -> Any:
    """A code object as the daemon sends it (sandboxd/bytecode.py), of the warm-up's fixed trusted text."""
    return compile(text, name, mode)


def warm_up(prep: Preparation, rounds: int = 16) -> None:
    """Run every job kind a few times in the fork-server, on fixed trusted text, before ``gc.freeze``.

    What a child does once, the fork-server has then already done: lazily built caches exist and
    the bytecode of the job path is specialised, so children do not write (and copy-on-write
    fault) those pages themselves. That includes the child's own path around the job (reading it
    from a memfd, reseeding, the frame and the probes): CPython 3.11 counts the calls of a function
    in its code object until the eighth quickens it, so a function a child calls for the first time
    writes to the page of its code object. Output goes to fds 1, 2 and ``RESULT_FD``, which are
    ``/dev/null`` here.
    """
    if not os.path.samestat(os.fstat(RESULT_FD), os.stat(os.devnull)):  # frames must go nowhere here
        raise RuntimeError("warm-up: RESULT_FD is not /dev/null")
    saved = sys.stdout, sys.stderr, random.getstate()
    request = {"nonce": "0" * 32, "encoder": {}}
    precompiled = [{**job, "bytecode": jobs.bytecode_field(job, _compiled)} for job in _WARM_UP_JOBS]
    try:
        for _ in range(rounds):  # 16, more than CPython's warm-up count, so the code is quickened
            for job in (*_WARM_UP_JOBS, *precompiled):
                prep.streams.install()  # the probes replace sys.stdout and sys.stderr
                job_fd = os.memfd_create("job")  # as the fork-server makes them
                try:
                    _write_all(job_fd, marshal.dumps([request, job]))
                    _reseed()
                    run, loaded = read_job(job_fd)
                finally:
                    os.close(job_fd)
                _executed(loaded, run, prep)
            prep.streams.stdout.flush()
    finally:
        sys.stdout, sys.stderr, state = saved
        sys.__stdout__, sys.__stderr__ = saved[:2]  # type: ignore[misc,assignment]
        random.setstate(state)


def _program_frames(tb: Any) -> Any:
    """Drop the runner's own frames so a traceback starts at the model's code."""
    while tb is not None and tb.tb_frame.f_code.co_filename != "<program>":
        tb = tb.tb_next
    return tb


def _show_exception(exc: BaseException, stream: Any) -> None:
    """Print ``exc`` to ``stream`` as the interpreter prints an uncaught exception, from the model's code on."""
    saved = sys.stderr
    sys.stderr = stream  # the C printer writes to sys.stderr, and prints the exception's own traceback
    try:
        exc.__traceback__ = _program_frames(exc.__traceback__)
        _print_exception(type(exc), exc, exc.__traceback__)
    finally:
        sys.stderr = saved


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = _write(fd, view)
        view = view[written:]


PROBE_TEXT_BYTES = 16 * 1024  # a probe's value beyond this is reported as an encoding error
_type = type


class _Discard:
    """Where ``print`` goes during probes: probe output is never shown or judged."""

    def write(self, text: str) -> int:
        return len(text) if _type(text) is str else 0

    def flush(self) -> None:
        return None


def _probe(job: dict[str, Any], namespace: dict[str, Any], request: dict[str, Any]) -> None:
    """After the result frame: one more frame per probe (the output signature's inputs, docs/azr.md).

    The validation's frame is already written, so nothing here can change it; if a probe hangs, the
    fork-server's wall limit ends the child and the remaining probes are reported as lost.
    """
    sink = _Discard()
    sys.stdout = sys.stderr = sink  # a write-only stand-in
    options = {**request.get("encoder", {}), "max_text_bytes": PROBE_TEXT_BYTES}
    try:
        for result in jobs.probe_results(job, namespace):
            _write_all(RESULT_FD, _frame(request["nonce"], jobs.Outcome(values=[result]), Encoder(**options)))
    except BaseException:  # a probe's hostile value or the frame pipe: stop probing, keep the exit status
        return


def run(fds: ChildFds, scratch: str, limits: dict[str, Any], prep: Preparation) -> None:
    """Entry point after fork (the Python spare path). Never returns."""
    try:
        request, job = read_job(fds.job)
        lock_down(fds, scratch, limits, prep)
    except BaseException:  # any failure before model code is a set-up failure
        _exit(EXIT_SETUP_FAILED)
    _execute(job, request, prep)


def run_native(prep: Preparation) -> None:
    """Entry point in a spare that ``spare.c`` locked down (fds, session, scratch, rlimits,
    no_new_privs, seccomp). Never returns."""
    try:
        request, job = read_job(JOB_FD)
        os.close(JOB_FD)
        _c_signal(_SIGPIPE, _SIG_IGN)
        _reseed()
    except BaseException:  # any failure before model code is a set-up failure
        _exit(EXIT_SETUP_FAILED)
    _execute(job, request, prep)


def _execute(job: dict[str, Any], request: dict[str, Any], prep: Preparation) -> None:
    """Run the job in the locked-down child, write its frame (and probes), exit."""
    _exit(_executed(job, request, prep))


def _executed(job: dict[str, Any], request: dict[str, Any], prep: Preparation) -> int:
    """Run the job, write its frame (and probes) to ``RESULT_FD``; the exit status the child ends with."""
    out, err = prep.streams.stdout, prep.streams.stderr
    encoder = Encoder(**request.get("encoder", {}))
    try:
        outcome = jobs.JOB_KINDS[job["kind"]](job)
    except BaseException as exc:  # model code may raise anything
        outcome = jobs.describe_exception(exc)
        if outcome.outcome == "exception":
            with contextlib.suppress(BaseException):  # a hostile __str__ must not stop the frame
                _show_exception(exc, err)
    for stream in (out, err):
        with contextlib.suppress(BaseException):  # the frame matters more than diagnostics
            stream.flush()
    try:
        _write_all(RESULT_FD, _frame(request["nonce"], outcome, encoder))
    except BaseException:
        return EXIT_FRAME_FAILED
    if outcome.probe_namespace is not None and outcome.outcome == "ok":
        _probe(job, outcome.probe_namespace, request)
    status = outcome.exit_code if outcome.outcome == "exit" else (1 if outcome.outcome == "exception" else 0)
    return status & 0xFF
