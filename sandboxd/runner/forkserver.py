"""The fork-server: PID 1 of a sandbox container.

It speaks :mod:`.protocol` on its stdin/stdout. After ``configure`` it imports the preload modules
once, compiles the seccomp allowlist once, and then runs each ``run`` request in a fresh child of
its own, at most ``max_parallel`` at a time. Children are forked a few at a time, ahead of their runs
(:class:`Spare`): each still runs exactly one program, and gets its run only after the fork.

Heavy modules (numpy) make every fork and every exit slower, because the page tables to copy and
tear down grow with them. So PID 1 preloads only the light modules, and a ``run`` tagged
``"zygote": "heavy"`` goes to a second fork-server (the *heavy zygote*) that PID 1 forks on first
use (or at ``configure``, given ``"prestart": ["heavy"]``), which imports the heavy modules and then
serves over a socketpair. Both apply the identical
lock-down; the tag only decides which warm image a child is forked from. It enforces wall time and output caps from outside the
child with SIGKILL and reports usage from ``wait4``. It never interprets results: it forwards
the child's raw result frame to the daemon, which decides the verdict.
"""

from __future__ import annotations

import array
import base64
import collections
import contextlib
import errno
import gc
import importlib
import marshal
import os
import resource
import selectors
import signal
import socket
import sys
import time

from . import child
from .capture import Capture
from .forking import Forker, output_apart
from .private import Inbox, PrivateMemory, write_all
from .protocol import RUN_SECTIONS, ProtocolError, encode_header, section_sizes
from .spare import NativeSpares, Spawner, control_message, from_environment
from .syscalls import FilterLoader, compile_filter_apart
from .zygote import Zygotes

TYPE_CHECKING = False  # typing itself is not imported: see child.ChildFds
if TYPE_CHECKING:
    from typing import Any

VERSION = 1
_REAP_POLL_SECONDS = 0.005
_PR_SET_DUMPABLE = 4
_PAGE = 4096
_ZYGOTE_FD = 4  # fds 0-3 are taken (see _own_protocol_fds)
_BURST = 4  # spares forked back to back at most (they count against the container's pids limit)
_WARM_BURST = 64  # warm spares asked of the spawner at a time (each answer carries four fds)
# Fewer warm spares than this write no pages ahead: the probe that finds them costs a container start
# tens of milliseconds, and saves each run about a quarter of one.
_TOUCHED_SPARES_MIN = 32
_SPARE_FDS = 4  # a spare's ends in the fork-server: its control socket, stdout, stderr and frame pipes
_RUN_FDS = 256  # fds kept free beside the warm spares, for the runs' memfds and pipes, zygotes, the inbox
_FDS_SPACE = socket.CMSG_SPACE(2 * 4)  # the job and stdin memfds
_MARSHAL_VERSION = 4  # a Python spare's control message (ours alone: the same interpreter reads it)
_CONTROL_BYTES = 1 << 16  # a run's header; the job and stdin travel as memfds


class Staged:
    """A run waiting for a slot: its header, and its body already moved into memfds.

    (The runner's records are plain classes, not dataclasses: see child.ChildFds.)
    """

    __slots__ = ("job_bytes", "job_fd", "request", "stdin_fd")

    def __init__(self, request: dict[str, Any], job_fd: int, job_bytes: int, stdin_fd: int | None) -> None:
        self.request = request
        self.job_fd = job_fd
        self.job_bytes = job_bytes
        self.stdin_fd = stdin_fd


class Run:
    """One child process and everything the server tracks about it."""

    __slots__ = (
        "capture", "deadline", "exited", "killed_by", "pid", "pidfd", "request", "scratch", "started", "streams",
    )  # fmt: skip

    def __init__(
        self,
        *,
        request: dict[str, Any],
        pid: int,
        started: float,
        deadline: float,
        scratch: str,
        capture: Capture,
        pidfd: int | None,
    ) -> None:
        self.request = request
        self.pid = pid
        self.started = started
        self.deadline = deadline
        self.scratch = scratch
        self.capture = capture
        self.pidfd = pidfd
        self.streams: dict[int, str] = {}  # read fd -> "stdout" | "stderr" | "frame"
        self.killed_by: str | None = None
        self.exited: tuple[int, int, Any] | None = None


class Spare:
    """A child forked ahead of its run, in a burst with others, blocked until it is handed one.

    Forking several children back to back, and only then doing the bookkeeping, means the fork-server's
    own writes after a fork (refcounts, new objects) copy-on-write fault once per burst instead of once
    per child (measured: 1.6-2.1 ms of fork-server CPU per run fell to 1.4-1.7). A burst covers the
    queued runs plus the daemon's ``backlog`` hint (runs of the request it has not sent yet). The spare
    holds nothing but the warm image it was forked from; its run (header, job and stdin memfds) arrives
    over ``control``. Spares are forked with :class:`.forking.Forker` (no CPython at-fork hooks).
    """

    __slots__ = ("control", "native", "pid", "pidfd", "pipes")

    def __init__(
        self, pid: int, pidfd: int | None, control: socket.socket, pipes: dict[str, int], native: bool = False
    ) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.control = control  # our end of a SOCK_SEQPACKET pair
        self.pipes = pipes  # name -> read end; the child holds the write ends
        self.native = native  # forked by spare.c: its run arrives as spare.control_message


class ForkServer:
    def __init__(self, requests_fd: int, responses_fd: int) -> None:
        self.requests_fd = requests_fd
        self.responses_fd = responses_fd
        self.selector = selectors.DefaultSelector()
        self.memory = PrivateMemory()
        self.inbox: Inbox | None = None  # made in serve(), so a forked zygote never shares one
        self.queue: collections.deque[Staged] = collections.deque()
        self.runs: dict[int, Run] = {}
        self.prep: child.Preparation | None = None
        self.max_parallel = 1
        self.scratch_root = "/scratch"
        self.scratch_prefix = "run"
        self.sequence = 0
        self.closing = False
        self.heavy_modules: list[str] = []
        self.zygotes: Zygotes | None = Zygotes(self)  # None in a zygote: it never routes further
        self.configuration: dict[str, Any] = {}
        self.outbox: list[bytes | memoryview] = []
        self.spares: collections.deque[Spare] = collections.deque()
        self.captures: list[Capture] = []  # idle, for reuse
        self.sent_captures: list[Capture] = []  # queued in the outbox; idle after the next flush
        self.forker = Forker()
        self.native = from_environment()  # None: spares are forked and locked down in Python
        self.spawner: Spawner | None = None  # started after the warm-up (start_spawner, spare.c)
        self.backlog = 0  # runs the daemon still holds for the latest staged run's request (a hint)

    # -- wire -------------------------------------------------------------------------------
    def send(self, message: dict[str, Any], body: list[memoryview] | None = None) -> None:
        """Queue a message; :meth:`flush` writes everything queued in one go after each step."""
        parts = body or []
        self.outbox.append(encode_header(message, sum(len(part) for part in parts)))
        self.outbox.extend(parts)

    def send_raw(self, message: memoryview) -> None:
        """Queue a whole encoded message (a zygote's answer), to be written before its buffer is reused."""
        self.outbox.append(message)

    def flush(self) -> None:
        if self.outbox:
            write_all(self.responses_fd, self.outbox)
            self.outbox.clear()
        self.captures.extend(self.sent_captures)
        self.sent_captures.clear()

    def on_requests(self) -> None:
        assert self.inbox is not None
        try:
            count = self.inbox.fill(self.requests_fd)
        except BlockingIOError:
            return
        if not count:
            self.closing = True
            self.selector.unregister(self.requests_fd)
            return
        try:
            messages = self.inbox.messages()
        except ProtocolError as exc:
            self.send({"op": "error", "message": str(exc)})
            self.closing = True
            return
        for message, body, whole in messages:
            self.dispatch(message, body, whole)

    def dispatch(self, message: dict[str, Any], body: memoryview, whole: memoryview) -> None:
        op = message.get("op")
        if op == "ping":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            self.send(
                {
                    "op": "pong",
                    "id": message.get("id"),
                    "running": len(self.runs),
                    "queued": len(self.queue),
                    "spares": len(self.spares),
                    "spawner": self.spawner is not None,
                    "zygotes": sorted(self.zygotes.by_tag) if self.zygotes is not None else [],
                    "cpu_time_seconds": usage.ru_utime + usage.ru_stime,
                }
            )
        elif op == "configure":
            self.configure(message)
        elif op == "run":
            if self.prep is None:
                self.send({"op": "error", "id": message.get("id"), "message": "not configured"})
            elif self.zygotes is not None and message.get("zygote") and self.zygotes.route(message, whole):
                pass
            else:
                self.stage(message, body)
        elif op == "shutdown":
            self.closing = True
        else:
            self.send({"op": "error", "id": message.get("id"), "message": f"unknown op {op!r}"})

    def configure(self, message: dict[str, Any]) -> None:
        self.configuration = message
        started = time.perf_counter()
        scheduling = _schedule(str(message.get("scheduling", "normal")))
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
                loader = FilterLoader(compile_filter_apart(message["syscalls"]))
        except (KeyError, ValueError, OSError) as exc:
            self.send({"op": "error", "message": f"seccomp: {exc}"})
            self.closing = True
            return
        self.max_parallel = max(1, int(message.get("max_parallel", 1)))
        self.heavy_modules = [str(name) for name in message.get("heavy_modules", [])]
        self.scratch_root = str(message.get("scratch_root", "/scratch"))
        prep = child.Preparation(loader, child.ChildStreams.create(), 0)
        child.warm_up(prep)  # so children do not each build the same caches (fewer copy-on-write faults)
        prep.streams.install()  # for good: the fork-server never writes to them, children inherit them
        gc.collect()
        gc.freeze()  # keep the preloaded heap shared copy-on-write with every child
        self.prep = prep.measured(child.vm_size_bytes())
        self.memory.grew = False
        wanted = message.get("spares", 0)  # the touch pages are for warm spares only, and worth their probe
        many = type(wanted) is int and wanted >= _TOUCHED_SPARES_MIN
        touched = self.find_touch_pages(message.get("spare_pages", 0)) if many else 0
        self.start_spawner()
        # Zygotes the daemon expects runs for (runs that needed them lately): started now, while the
        # container waits in the warm pool, instead of at the first such run, in the middle of a request.
        prestarted = [
            str(tag)
            for tag in message.get("prestart", [])
            if self.zygotes is not None and self.zygotes.prestart(str(tag))
        ]
        warm = self.warm_spares(wanted)
        self.send(
            {
                "op": "configured",
                "pid": os.getpid(),
                "zygotes": prestarted,
                "preload_failed": failed,
                "private_memory": self.memory.advice,
                "seconds": round(time.perf_counter() - started, 4),
                "spares": "native" if self.native is not None else "python",
                "spawner": self.spawner is not None,
                "scheduling": scheduling,
                "warm_spares": warm,
                "touch_pages": touched,
            }
        )

    def find_touch_pages(self, most: object) -> int:
        """Find the pages a run writes (:func:`_written_pages`), at most ``most``, for warm spares to write
        while they wait (native path only, before the spawner starts: it inherits them); how many."""
        native, prep = self.native, self.prep
        if type(most) is not int or most <= 0 or native is None or prep is None:
            return 0
        if not self.forker.single_threaded():
            return 0
        try:
            pages = _written_pages(self.forker, prep)
        except OSError:
            return 0  # warm spares only skip their forks then
        del pages[most:]
        native.set_touch(pages)
        return len(pages)

    def warm_spares(self, wanted: object) -> int:
        """Fork ``wanted`` spares now, while the container waits in the pool: runs that find one skip
        their fork (docs/design.md, "Warm spares"). Fewer if the pids limit, or the open-files limit
        (four fds each, and room for the runs), says so; how many there are."""
        if type(wanted) is int and wanted > 0:
            room = (resource.getrlimit(resource.RLIMIT_NOFILE)[0] - _RUN_FDS) // _SPARE_FDS
            wanted = min(wanted, max(0, room))
            with contextlib.suppress(OSError):  # out of pids with nothing running: the runs fork their own
                while len(self.spares) < wanted and self.fork_spares(
                    min(_WARM_BURST, wanted - len(self.spares)), warm=True
                ):
                    pass
        return len(self.spares)

    # -- runs -------------------------------------------------------------------------------
    def stage(self, request: dict[str, Any], body: memoryview) -> None:
        """Move the run's body (job text, stdin) out of the inbox into memfds its child reads."""
        job_fd = stdin_fd = None
        try:
            job_bytes, stdin_bytes = section_sizes(request, RUN_SECTIONS, len(body))
            job_fd = os.memfd_create("job")
            write_all(job_fd, [body[:job_bytes]])
            if stdin_bytes:
                stdin_fd = os.memfd_create("stdin")
                write_all(stdin_fd, [body[job_bytes:]])
                os.lseek(stdin_fd, 0, os.SEEK_SET)
        except (ProtocolError, OSError) as exc:
            for fd in (job_fd, stdin_fd):
                if fd is not None:
                    os.close(fd)
            self.send({"op": "error", "id": request.get("id"), "message": f"cannot stage run: {exc}"})
            return
        self.queue.append(Staged(request, job_fd, job_bytes, stdin_fd))
        backlog = request.get("backlog", 0)
        self.backlog = backlog if type(backlog) is int and backlog > 0 else 0

    def start_queued(self) -> None:
        while self.queue and len(self.runs) < self.max_parallel:
            if not self.spares and not self.fork_spares(min(_BURST, len(self.queue) + self.backlog)):
                break  # the pids limit is reached: a child's exit frees a slot
            self.start(self.queue.popleft(), self.spares.popleft())

    def fork_spares(self, count: int, warm: bool = False) -> int:
        """Fork up to ``count`` spares back to back; how many were made. ``warm`` spares (native path)
        write the touch pages while they wait (:meth:`warm_spares`).

        Out of pids (EAGAIN) with children still running, fewer (or none) is fine: the queue waits for
        an exit. With nothing running, a failed fork can never succeed later, so it is raised.
        """
        assert self.prep is not None
        bare = self.forker.single_threaded()
        if self.native is not None and bare:  # spare.c: fork, wait and lock down in C
            return self._fork_native(self.native, count, warm)
        for made in range(count):
            pipes: dict[str, tuple[int, int]] = {}
            ours = theirs = None
            try:
                ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                for name in ("stdout", "stderr", "frame"):
                    pipes[name] = os.pipe()
                pid = self.forker.fork(bare)
            except OSError:
                for read_fd, write_fd in pipes.values():
                    os.close(read_fd)
                    os.close(write_fd)
                for end in (ours, theirs):
                    if end is not None:
                        end.close()
                if made or self.runs:
                    return made
                raise
            if pid == 0:  # pragma: no cover - the spare never returns from here
                ours.close()
                _spare(theirs, {name: ends[1] for name, ends in pipes.items()}, self.prep)
            theirs.close()
            for _, write_fd in pipes.values():
                os.close(write_fd)
            self._keep_spare(pid, ours, {name: ends[0] for name, ends in pipes.items()}, native=False)
        return count

    def _keep_spare(self, pid: int, control: socket.socket, pipes: dict[str, int], *, native: bool) -> None:
        """Track a spare just forked (either path): its pidfd, if the kernel gives one, and its ends."""
        pidfd = None
        with contextlib.suppress(OSError, AttributeError):
            pidfd = os.pidfd_open(pid)
        self.spares.append(Spare(pid, pidfd, control, pipes, native=native))

    def _fork_native(self, native: NativeSpares, count: int, warm: bool) -> int:
        assert self.prep is not None
        fprog = self.prep.loader.fprog_address
        spawner = self.spawner
        made: list[tuple[int, tuple[int, int, int, int]]] = []
        error: OSError | None = None
        if spawner is not None:
            made, error = spawner.fork(count, warm)
            if error is not None and error.errno not in (errno.EAGAIN, errno.ENOMEM):
                spawner.close()  # broken: fork here from now on (same image, more faults)
                self.spawner = None
                error = None
        while error is None and len(made) < count:
            try:
                made.append(native.fork(fprog, warm))
            except OSError as exc:
                error = exc
            else:
                if made[-1][0] == 0:  # pragma: no cover - the spare never returns from here
                    child.run_native(self.prep)
        for pid, (control, stdout, stderr, frame) in made:
            # proto given, so socket() asks the kernel nothing (getsockopt is not in the container's profile)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, 0, fileno=control)
            self._keep_spare(pid, sock, {"stdout": stdout, "stderr": stderr, "frame": frame}, native=True)
        if error is not None and not made and not self.runs:
            raise error  # nothing running can free a pid: this can never succeed later
        return len(made)

    def start_spawner(self) -> None:
        """Fork the spawner right after the warm-up, before any run: its image (and so every spare's)
        holds nothing of any run. Not when threads exist (the bare fork needs one) or under gVisor."""
        native = self.native
        if native is None or not native.spawner or self.prep is None or not self.forker.single_threaded():
            return
        fprog = self.prep.loader.fprog_address
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = self.forker.fork(True)
        except OSError:
            ours.close()
            theirs.close()
            return
        if pid == 0:  # pragma: no cover - the spawner (and each spare it makes) never returns from here
            assert self.prep is not None
            ours.close()
            keep = theirs.detach()
            os.closerange(child.RESULT_FD + 1, keep)  # it needs 0-3 (what spares inherit) and its socket
            os.closerange(keep + 1, 1 << 16)
            native.serve_spawner(keep, fprog)  # returns only in a spare, locked down
            child.run_native(self.prep)
        theirs.close()
        spawner = Spawner(pid, ours)
        if spawner.greeted():
            self.spawner = spawner
        else:  # gVisor: its spares would not be our children
            spawner.close()

    def _drop_spare(self, spare: Spare) -> None:
        """Close a spare's ends: blocked on its control socket, it sees EOF and exits. Then reap it."""
        spare.control.close()
        for fd in spare.pipes.values():
            os.close(fd)
        if spare.pidfd is not None:
            os.close(spare.pidfd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(spare.pid, 0)

    def _capture(self, output_cap: int, frame_cap: int) -> Capture:
        for index, capture in enumerate(self.captures):
            if capture.fits(output_cap, frame_cap):
                del self.captures[index]
                capture.reset()
                return capture
        if len(self.captures) >= self.max_parallel:
            self.captures.pop(0).close()
        return Capture(self.memory, output_cap, frame_cap)

    def start(self, staged: Staged, spare: Spare) -> None:
        assert self.prep is not None
        request = staged.request
        limits = request["limits"]
        capture = self._capture(int(limits["output_bytes"]), int(request.get("frame_bytes", 8 * 1024 * 1024)))
        if self.memory.grew:  # a new private mapping: children's RLIMIT_AS is measured from here
            self.prep = self.prep.measured(child.vm_size_bytes())
            self.memory.grew = False
        self.sequence += 1
        scratch = os.path.join(self.scratch_root, f"{self.scratch_prefix}-{self.sequence}")
        os.mkdir(scratch, 0o700)
        if spare.native:
            header = control_message(
                request, scratch, staged.job_bytes, staged.stdin_fd is not None, self.prep.base_vm_bytes
            )
        else:
            header = marshal.dumps([scratch, limits], _MARSHAL_VERSION)
        fds = [staged.job_fd] if staged.stdin_fd is None else [staged.job_fd, staged.stdin_fd]
        started = time.monotonic()
        with contextlib.suppress(OSError):  # a spare killed from outside: reaped and reported as this run
            socket.send_fds(spare.control, [header], fds)
        spare.control.close()
        os.close(staged.job_fd)
        if staged.stdin_fd is not None:
            os.close(staged.stdin_fd)
        pid, pidfd = spare.pid, spare.pidfd
        run = Run(
            request=request,
            pid=pid,
            started=started,
            deadline=started + float(limits["wall_time_seconds"]),
            scratch=scratch,
            capture=capture,
            pidfd=pidfd,
        )
        for name, read_fd in spare.pipes.items():
            os.set_blocking(read_fd, False)
            run.streams[read_fd] = name
            self.selector.register(read_fd, selectors.EVENT_READ, ("stream", pid))
        if pidfd is not None:
            self.selector.register(pidfd, selectors.EVENT_READ, ("exit", pid))
        self.runs[pid] = run

    def on_stream(self, run: Run, fd: int) -> bool:
        """Read one chunk; False when there was nothing to read yet."""
        try:
            count = run.capture.read(fd, run.streams[fd])
        except BlockingIOError:
            return False
        if count < 0:  # over the cap: the rest is never read
            self.kill(run, "output")
        if count <= 0:
            self.selector.unregister(fd)
            os.close(fd)
            del run.streams[fd]
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
            import shutil  # noqa: PLC0415 - rarely needed; importing it up front costs every fork (see Staged)

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
                **run.capture.header_fields(),
            },
            run.capture.sections(),
        )
        self.sent_captures.append(run.capture)

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
                if self.zygotes is not None:
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
        try:
            self.inbox = Inbox(self.memory)
        except OSError as exc:  # fail closed: without private memory, children could see earlier runs
            self.send({"op": "error", "message": f"private memory: {exc}"})
            self.flush()
            return
        os.set_blocking(self.requests_fd, False)
        self.selector.register(self.requests_fd, selectors.EVENT_READ, None)
        if greet:
            self.send({"op": "hello", "version": VERSION, "pid": os.getpid()})
            self.flush()
        while not (self.closing and not self.runs and not self.queue):
            if self.closing:
                while self.queue:
                    self._discard(self.queue.popleft())
                while self.spares:
                    self._drop_spare(self.spares.popleft())
                if self.spawner is not None:
                    self.spawner.close()
                    self.spawner = None
                if self.zygotes is not None:
                    self.zygotes.close_all()
            self.step()

    @staticmethod
    def _discard(staged: Staged) -> None:
        os.close(staged.job_fd)
        if staged.stdin_fd is not None:
            os.close(staged.stdin_fd)


def _schedule(wanted: str) -> str:
    """Put this process, and so everything it forks from now on, under ``wanted``; what it got.

    ``batch`` is SCHED_BATCH: a woken child or fork-server then waits for the running task's slice
    instead of preempting it, which saves context switches when every CPU is busy (docs/design.md,
    "Sandboxes are scheduled as batch work"). It is a speed hint, not isolation: where the kernel
    refuses it (gVisor may), the sandbox runs as normal work and ``configured`` says why. Children
    cannot change it back: ``sched_setscheduler`` and ``sched_setattr`` are in no built-in allowlist.
    """
    if wanted != "batch":
        return "normal"
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except OSError as exc:
        return f"normal ({exc.strerror or exc})"
    return "batch"


def _own_protocol_fds() -> tuple[int, int]:
    """Move the protocol off 0/1 so stray prints cannot corrupt it, and keep fd 3 reserved.

    With ``SANDBOXD_CHANNEL`` set, the protocol runs over that unix socket instead of stdin and
    stdout (sandboxd/backends/channel.py): connect, present the token, then speak.
    """
    null = os.open(os.devnull, os.O_RDWR)
    if null != child.RESULT_FD:
        os.dup2(null, child.RESULT_FD)
        os.close(null)
    channel = os.environ.pop("SANDBOXD_CHANNEL", None)
    token = os.environ.pop("SANDBOXD_CHANNEL_TOKEN", "")
    if channel:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.connect(channel)
            write_all(connection.fileno(), [token.encode("ascii") + b"\n"])  # write(2): sendto is not allowed
            requests_fd = connection.detach()
        responses_fd = requests_fd
    else:
        requests_fd = os.dup(0)
        responses_fd = os.dup(1)
    os.dup2(child.RESULT_FD, 0)
    os.dup2(child.RESULT_FD, 1)
    return requests_fd, responses_fd


def _private_ranges() -> list[tuple[int, int]]:
    """This process's writable private mappings, by /proc/self/maps (not the stack or the kernel's)."""
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            name = fields[5] if len(fields) > 5 else ""
            if fields[1][:2] != "rw" or fields[1][3] != "p" or (name.startswith("[") and name != "[heap]"):
                continue
            start, end = (int(edge, 16) for edge in fields[0].split("-"))
            ranges.append((start, end))
    return ranges


def _mapped_pages(ranges: list[tuple[int, int]], exclusive: bool) -> list[int]:
    """The pages of ``ranges`` present in memory (``exclusive``: and mapped by this process alone), by
    /proc/self/pagemap: bit 63 present, bit 56 exclusively mapped (no privilege needed for either)."""
    found = []
    fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    try:
        for start, end in ranges:
            entries = os.pread(fd, (end - start) // _PAGE * 8, start // _PAGE * 8)
            for index, entry in enumerate(memoryview(entries).cast("Q")):
                if entry >> 63 and (not exclusive or entry >> 56 & 1):
                    found.append(start + index * _PAGE)
    finally:
        os.close(fd)
    return found


def _written_pages(forker: Forker, prep: child.Preparation) -> array.array[int]:
    """The pages of the fork-server's image that a run writes: a probe child runs every job kind once
    (the warm-up's fixed trusted text, as a run would), then lists its pages that were present when it
    was forked and are its own now (copied on write). Raises OSError if the probe cannot tell."""

    def work() -> bytes:
        FilterLoader(b"\0" * 8).prctl(_PR_SET_DUMPABLE, 1)  # its own /proc files readable again
        ranges = _private_ranges()
        present = set(_mapped_pages(ranges, exclusive=False))
        child.warm_up(prep, rounds=1)
        written = [page for page in _mapped_pages(ranges, exclusive=True) if page in present]
        return array.array("Q", written).tobytes()

    data, status = output_apart(lambda: forker.fork(forker.single_threaded()), work)
    if status != 0:
        raise OSError(errno.ECHILD, "the page probe failed")
    pages = array.array("Q")
    pages.frombytes(data)
    return pages


def _spare(control: socket.socket, writes: dict[str, int], prep: child.Preparation) -> None:
    """Body of a spare: wait for a run over ``control``, then become its child. Never returns.

    The message is the run's scratch path and limits (marshal); the job and stdin arrive as memfds,
    as they did for a child forked per run. EOF means the fork-server is done with us.
    """
    try:
        # recvmsg, not socket.recv_fds: its Python-level wrapper costs the child ~30 more page faults
        data, ancillary, _, _ = control.recvmsg(_CONTROL_BYTES, _FDS_SPACE)
        control.close()
        if not data:
            os._exit(0)
        fds = memoryview(ancillary[0][2]).cast("i").tolist()
        scratch, limits = marshal.loads(data)  # noqa: S302 - our fork-server's own message
        stdin = fds[1] if len(fds) == 2 else None
        child_fds = child.ChildFds(stdin, writes["stdout"], writes["stderr"], writes["frame"], fds[0])
    except BaseException:
        os._exit(child.EXIT_SETUP_FAILED)
    child.run(child_fds, scratch, limits, prep)


def heavy_zygote(parent: ForkServer, fd: int) -> int:
    """Body of a forked zygote: import the heavy modules, then serve runs over ``fd``."""
    assert parent.prep is not None
    server = ForkServer(fd, fd)
    server.zygotes = None
    for name in parent.heavy_modules:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    server.max_parallel = parent.max_parallel
    server.scratch_root = parent.scratch_root
    server.scratch_prefix = f"z{os.getpid()}"
    child.warm_up(parent.prep)
    parent.prep.streams.install()
    gc.collect()
    gc.freeze()
    server.prep = child.Preparation(parent.prep.loader, parent.prep.streams, child.vm_size_bytes())
    server.start_spawner()
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
        server.zygotes = None
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
