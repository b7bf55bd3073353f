"""The fork-server: PID 1 of a sandbox container.

It speaks :mod:`.protocol` on its stdin/stdout. After ``configure`` it imports the preload modules
once, compiles the seccomp allowlist once, and then forks one fresh child per ``run`` request,
at most ``max_parallel`` at a time.

Heavy modules (numpy) make every fork and every exit slower, because the page tables to copy and
tear down grow with them. So PID 1 preloads only the light modules, and a ``run`` tagged
``"zygote": "heavy"`` goes to a second fork-server (the *heavy zygote*) that PID 1 forks on first
use, which imports the heavy modules and then serves over a socketpair. Both apply the identical
lock-down; the tag only decides which warm image a child is forked from. It enforces wall time and output caps from outside the
child with SIGKILL and reports usage from ``wait4``. It never interprets results: it forwards
the child's raw result frame to the daemon, which decides the verdict.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import errno
import gc
import importlib
import os
import resource
import select
import selectors
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from . import child
from .protocol import MessageReader, ProtocolError, encode_message
from .syscalls import FilterLoader, compile_filter
from .zygote import Zygotes

VERSION = 1
_READ_CHUNK = 65536
_REAP_POLL_SECONDS = 0.005
_PR_SET_DUMPABLE = 4
_ZYGOTE_FD = 4  # fds 0-3 are taken (see _own_protocol_fds)


@dataclass
class Run:
    """One child process and everything the server tracks about it."""

    request: dict[str, Any]
    pid: int
    started: float
    deadline: float
    scratch: str
    output_cap: int
    frame_cap: int
    pidfd: int | None
    streams: dict[int, str] = field(default_factory=dict)  # read fd -> "stdout" | "stderr" | "frame"
    data: dict[str, bytearray] = field(default_factory=dict)
    truncated: dict[str, bool] = field(default_factory=dict)
    killed_by: str | None = None
    exited: tuple[int, int, Any] | None = None


class ForkServer:
    def __init__(self, requests_fd: int, responses_fd: int) -> None:
        self.requests_fd = requests_fd
        self.responses_fd = responses_fd
        self.selector = selectors.DefaultSelector()
        self.reader = MessageReader()
        self.queue: collections.deque[dict[str, Any]] = collections.deque()
        self.runs: dict[int, Run] = {}
        self.prep: child.Preparation | None = None
        self.max_parallel = 1
        self.scratch_root = "/scratch"
        self.scratch_prefix = "run"
        self.sequence = 0
        self.closing = False
        self.heavy_modules: list[str] = []
        self.zygotes = Zygotes(self)
        self.configuration: dict[str, Any] = {}
        self.outbox: list[bytes] = []

    # -- wire -------------------------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        """Queue a message; :meth:`flush` writes everything queued in one go after each step."""
        self.outbox.append(encode_message(message))

    def flush(self) -> None:
        if not self.outbox:
            return
        view = memoryview(b"".join(self.outbox))
        self.outbox.clear()
        while view:
            try:
                view = view[os.write(self.responses_fd, view) :]
            except BlockingIOError:
                select.select([], [self.responses_fd], [], 1.0)

    def on_requests(self) -> None:
        try:
            data = os.read(self.requests_fd, _READ_CHUNK)
        except BlockingIOError:
            return
        if not data:
            self.closing = True
            self.selector.unregister(self.requests_fd)
            return
        try:
            messages = self.reader.feed(data)
        except ProtocolError as exc:
            self.send({"op": "error", "message": str(exc)})
            self.closing = True
            return
        for message in messages:
            self.dispatch(message)

    def dispatch(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "ping":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            self.send(
                {
                    "op": "pong",
                    "id": message.get("id"),
                    "running": len(self.runs),
                    "queued": len(self.queue),
                    "cpu_time_seconds": usage.ru_utime + usage.ru_stime,
                }
            )
        elif op == "configure":
            self.configure(message)
        elif op == "run":
            if self.prep is None:
                self.send({"op": "error", "id": message.get("id"), "message": "not configured"})
            elif message.get("zygote") and self.zygotes.route(message):
                pass
            else:
                self.queue.append(message)
        elif op == "shutdown":
            self.closing = True
        else:
            self.send({"op": "error", "id": message.get("id"), "message": f"unknown op {op!r}"})

    def configure(self, message: dict[str, Any]) -> None:
        self.configuration = message
        started = time.perf_counter()
        failed = []
        for name in message.get("preload", []):
            try:
                importlib.import_module(name)
            except Exception:  # a missing optional module is reported, not fatal
                failed.append(name)
        try:
            if message.get("bpf"):  # an exec'd zygote gets PID 1's compiled program
                loader = FilterLoader(base64.b64decode(message["bpf"]))
            else:
                loader = FilterLoader(compile_filter(message["syscalls"]))
        except (KeyError, ValueError, OSError) as exc:
            self.send({"op": "error", "message": f"seccomp: {exc}"})
            self.closing = True
            return
        self.max_parallel = max(1, int(message.get("max_parallel", 1)))
        self.heavy_modules = [str(name) for name in message.get("heavy_modules", [])]
        self.scratch_root = str(message.get("scratch_root", "/scratch"))
        gc.collect()
        gc.freeze()  # keep the preloaded heap shared copy-on-write with every child
        self.prep = child.Preparation(loader, child.ChildStreams.create(), child.vm_size_bytes())
        self.send(
            {
                "op": "configured",
                "pid": os.getpid(),
                "preload_failed": failed,
                "seconds": round(time.perf_counter() - started, 4),
            }
        )

    # -- runs -------------------------------------------------------------------------------
    def start_queued(self) -> None:
        while self.queue and len(self.runs) < self.max_parallel:
            self.start(self.queue.popleft())

    def start(self, request: dict[str, Any]) -> None:
        assert self.prep is not None
        limits = request["limits"]
        self.sequence += 1
        scratch = os.path.join(self.scratch_root, f"{self.scratch_prefix}-{self.sequence}")
        os.mkdir(scratch, 0o700)
        stdin_bytes = str(request.get("stdin") or "").encode("utf-8", "surrogatepass")
        if stdin_bytes:
            stdin_fd = os.memfd_create("stdin")
            os.write(stdin_fd, stdin_bytes)
            os.lseek(stdin_fd, 0, os.SEEK_SET)
        else:
            stdin_fd = os.dup(child.RESULT_FD)  # fd 3 is /dev/null in the fork-server
        pipes = {name: os.pipe() for name in ("stdout", "stderr", "frame")}
        fds = child.ChildFds(stdin_fd, pipes["stdout"][1], pipes["stderr"][1], pipes["frame"][1])
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, which always _exits
            child.run(fds, scratch, request, self.prep)
        os.close(stdin_fd)
        pidfd = None
        with contextlib.suppress(OSError, AttributeError):
            pidfd = os.pidfd_open(pid)
        run = Run(
            request=request,
            pid=pid,
            started=started,
            deadline=started + float(limits["wall_time_seconds"]),
            scratch=scratch,
            output_cap=int(limits["output_bytes"]),
            frame_cap=int(request.get("frame_bytes", 8 * 1024 * 1024)),
            pidfd=pidfd,
        )
        for name, (read_fd, write_fd) in pipes.items():
            os.close(write_fd)
            os.set_blocking(read_fd, False)
            run.streams[read_fd] = name
            run.data[name] = bytearray()
            run.truncated[name] = False
            self.selector.register(read_fd, selectors.EVENT_READ, ("stream", pid))
        if pidfd is not None:
            self.selector.register(pidfd, selectors.EVENT_READ, ("exit", pid))
        self.runs[pid] = run

    def on_stream(self, run: Run, fd: int) -> bool:
        """Read one chunk; False when there was nothing to read yet."""
        name = run.streams[fd]
        try:
            data = os.read(fd, _READ_CHUNK)
        except BlockingIOError:
            return False
        if not data:
            self.selector.unregister(fd)
            os.close(fd)
            del run.streams[fd]
            return True
        cap = run.frame_cap if name == "frame" else run.output_cap
        buffer = run.data[name]
        room = cap - len(buffer)
        if len(data) > room:
            buffer += data[: max(room, 0)]
            run.truncated[name] = True
            self.kill(run, "output")
        else:
            buffer += data
        return True

    def kill(self, run: Run, reason: str) -> None:
        if run.killed_by is None and run.exited is None:
            run.killed_by = reason
            with contextlib.suppress(ProcessLookupError):
                os.kill(run.pid, signal.SIGKILL)

    def try_reap(self, run: Run, block: bool = False) -> bool:
        try:
            pid, status, usage = os.wait4(run.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            pid, status, usage = run.pid, 0, None
        if pid == 0:
            return False
        run.exited = (pid, status, usage)
        return True

    def finish(self, run: Run) -> None:
        """The child is reaped: drain what is left in the pipes and report."""
        assert run.exited is not None
        ended = time.monotonic()
        for fd in list(run.streams):  # the child is gone, so every pipe ends in EOF
            for _ in range(1024):  # bounded: a pipe holds at most 64 KiB
                if fd not in run.streams or not self.on_stream(run, fd):
                    break
        for fd in list(run.streams):
            self.selector.unregister(fd)
            os.close(fd)
        run.streams.clear()
        if run.pidfd is not None:
            self.selector.unregister(run.pidfd)
            os.close(run.pidfd)
        del self.runs[run.pid]
        try:
            os.rmdir(run.scratch)  # children cannot create files, so it is normally empty
        except OSError:
            shutil.rmtree(run.scratch, ignore_errors=True)
        _, status, usage = run.exited
        exit_code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        term_signal = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        cpu = (usage.ru_utime + usage.ru_stime) if usage is not None else 0.0
        self.send(
            {
                "op": "result",
                "id": run.request.get("id"),
                "exit_code": exit_code,
                "signal": term_signal,
                "killed_by": run.killed_by,
                "wall_time_seconds": round(ended - run.started, 6),
                "cpu_time_seconds": round(cpu, 6),
                "peak_memory_kib": usage.ru_maxrss if usage is not None else 0,
                "stdout": base64.b64encode(run.data["stdout"]).decode("ascii"),
                "stderr": base64.b64encode(run.data["stderr"]).decode("ascii"),
                "stdout_truncated": run.truncated["stdout"],
                "stderr_truncated": run.truncated["stderr"],
                "frame": base64.b64encode(run.data["frame"]).decode("ascii"),
                "frame_truncated": run.truncated["frame"],
            }
        )

    def send_raw(self, frame: bytes) -> None:
        self.outbox.append(frame)

    # -- loop -------------------------------------------------------------------------------
    def timeout(self) -> float | None:
        if not self.runs:
            return None
        now = time.monotonic()
        wait = min(run.deadline for run in self.runs.values()) - now
        if any(run.pidfd is None for run in self.runs.values()):
            wait = min(wait, _REAP_POLL_SECONDS)
        return max(wait, 0.0)

    def step(self) -> None:
        self.start_queued()
        for key, _ in self.selector.select(self.timeout()):
            if key.fd == self.requests_fd:
                self.on_requests()
                continue
            kind, pid = key.data
            if kind == "zygote":
                self.zygotes.on_readable(pid)
                continue
            run = self.runs.get(pid)
            if run is None:
                continue
            if kind == "stream" and key.fd in run.streams:
                self.on_stream(run, key.fd)
            elif kind == "exit" and self.try_reap(run, block=True):
                self.finish(run)
        now = time.monotonic()
        for run in list(self.runs.values()):
            if now >= run.deadline:
                self.kill(run, "wall")
            if run.pidfd is None and run.exited is None and self.try_reap(run):
                self.finish(run)
        self.start_queued()  # a finished child frees a slot for a queued run right away
        self.flush()

    def serve(self, *, greet: bool = True) -> None:
        os.set_blocking(self.requests_fd, False)
        self.selector.register(self.requests_fd, selectors.EVENT_READ, None)
        if greet:
            self.send({"op": "hello", "version": VERSION, "pid": os.getpid()})
            self.flush()
        while not (self.closing and not self.runs and not self.queue):
            if self.closing:
                self.queue.clear()
                self.zygotes.close_all()
            self.step()


def _own_protocol_fds() -> tuple[int, int]:
    """Move the protocol off 0/1 so stray prints cannot corrupt it, and keep fd 3 reserved."""
    null = os.open(os.devnull, os.O_RDWR)
    if null != child.RESULT_FD:
        os.dup2(null, child.RESULT_FD)
        os.close(null)
    requests_fd = os.dup(0)
    responses_fd = os.dup(1)
    os.dup2(child.RESULT_FD, 0)
    os.dup2(child.RESULT_FD, 1)
    return requests_fd, responses_fd


def heavy_zygote(parent: ForkServer, fd: int) -> int:
    """Body of a forked zygote: import the heavy modules, then serve runs over ``fd``."""
    assert parent.prep is not None
    server = ForkServer(fd, fd)
    for name in parent.heavy_modules:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    server.max_parallel = parent.max_parallel
    server.scratch_root = parent.scratch_root
    server.scratch_prefix = f"z{os.getpid()}"
    gc.collect()
    gc.freeze()
    server.prep = child.Preparation(parent.prep.loader, parent.prep.streams, child.vm_size_bytes())
    server.serve(greet=False)
    return 0


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    libc_prctl = FilterLoader(b"\0" * 8)
    libc_prctl.prctl(_PR_SET_DUMPABLE, 0)  # no /proc/<pid>/mem or environ for our children
    if args[:1] == ["--zygote-fd"]:
        # An exec'd zygote (another hash seed): fds 0-3 are already /dev/null; PID 1 configures us.
        fd = int(args[1])
        server = ForkServer(fd, fd)
        server.scratch_prefix = f"z{os.getpid()}"
        server.serve(greet=False)
        return
    requests_fd, responses_fd = _own_protocol_fds()
    try:
        ForkServer(requests_fd, responses_fd).serve()
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            print(f"fork-server: {exc!r}", file=sys.stderr)
            raise


if __name__ == "__main__":
    main()
