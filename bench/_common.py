"""Shared by the benchmarks: start and stop a daemon, load the AZR workload, percentiles, host figures.

The daemon runs as a separate ``sandboxd serve`` process (its own instance label, a free loopback
port), so that its RSS can be sampled with psutil and the load generator does not share its GIL.
"""

from __future__ import annotations

import ast
import contextlib
import gc
import json
import math
import os
import platform
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WORKLOAD = Path("/work/shared/data/azr/7b_coder_seed_io.jsonl")
SANDBOXD = ROOT / ".venv" / "bin" / "sandboxd"
SENTINEL = "\n@@sandboxd-bench@@"
AZR_TRUNCATE = 400  # AZR keeps the first and last 200 characters of longer outputs


# -- the daemon --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def docker_ids(*filters: str) -> list[str]:
    """Container ids (running or not) matching ``docker ps`` filters."""
    command = ["docker", "ps", "-a", "-q", "--no-trunc"]
    for item in filters:
        command += ["--filter", item]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    return out.split()


def instance_containers(instance: str) -> int:
    return len(docker_ids(f"label=sandboxd.instance={instance}"))


def shim_container_ids() -> set[str]:
    """Container ids that have a containerd-shim process on the host (``-id <id>`` on its command line)."""
    ids: set[str] = set()
    for proc in psutil.process_iter(["name", "cmdline"]):
        if not (proc.info["name"] or "").startswith("containerd-shim"):
            continue
        args = proc.info["cmdline"] or []
        if "-id" in args[:-1]:
            ids.add(args[args.index("-id") + 1])
    return ids


def shim_figures(instance: str, ever: Collection[str] = (), tries: int = 3) -> dict[str, int]:
    """Shims of this instance's live containers; shims of its removed ones (``ever`` minus live).

    A container in the middle of its removal may still have its shim: the smallest count of
    stray shims over a few tries is kept. ``orphan_shims`` counts host-wide shims without any
    container, whoever started them (other users run containers here too).
    """
    best: dict[str, int] | None = None
    for attempt in range(tries):
        if attempt:
            time.sleep(0.5)
        shims = shim_container_ids()
        known = set(docker_ids())
        mine = set(docker_ids(f"label=sandboxd.instance={instance}"))
        figures = {
            "instance_shims": len(shims & mine),
            "stray_shims": len((shims & set(ever)) - mine),
            "orphan_shims": len(shims - known),
        }
        if best is None or figures["stray_shims"] < best["stray_shims"]:
            best = figures
    assert best is not None
    return best


class ContainerEvents:
    """Records the ids of every container created and destroyed for an instance (``docker events``)."""

    def __init__(self, instance: str) -> None:
        self.instance = instance
        self.created: set[str] = set()
        self.destroyed: set[str] = set()
        self._process: subprocess.Popen[str] | None = None
        self._thread = threading.Thread(target=self._read, name="docker-events", daemon=True)

    def __enter__(self) -> ContainerEvents:
        self._process = subprocess.Popen(
            [
                "docker", "events", "--filter", f"label=sandboxd.instance={self.instance}",
                "--filter", "type=container", "--filter", "event=create", "--filter", "event=destroy",
                "--format", "{{.Action}} {{.ID}}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self._thread.start()
        time.sleep(0.5)  # the subscription must be in place before anything happens
        return self

    def _read(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        for line in self._process.stdout:
            action, _, ident = line.strip().partition(" ")
            (self.created if action == "create" else self.destroyed).add(ident)

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.5)  # let the last events arrive
        assert self._process is not None
        self._process.terminate()
        self._process.wait(timeout=10)
        self._thread.join(timeout=5)


class RssSampler:
    """Samples a process's RSS on a background thread; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak_bytes = 0
        self.last_bytes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.last_bytes = self.process.memory_info().rss
                self.peak_bytes = max(self.peak_bytes, self.last_bytes)
                self.samples += 1
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of one process (its threads included, its children not)."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


@dataclass
class Daemon:
    """A ``sandboxd serve`` process of a fresh instance, with an RSS sampler attached."""

    process: subprocess.Popen[bytes]
    instance: str
    base_url: str
    log_path: Path
    rss: RssSampler

    @property
    def pid(self) -> int:
        return self.process.pid

    def client(self, timeout: float = 600.0) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=timeout)

    def readiness(self) -> dict[str, Any]:
        with self.client(10.0) as client:
            body: dict[str, Any] = client.get("/readyz").json()
            return body

    def metric(self, name: str, **labels: str) -> float:
        """One sample from ``/metrics`` (0.0 if absent)."""
        wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
        prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
        with self.client(10.0) as client:
            for line in client.get("/metrics").text.splitlines():
                if line.startswith(prefix):
                    return float(line.split()[-1])
        return 0.0

    def snapshot(self) -> dict[str, int]:
        """Process-level figures of the daemon that grow if it leaks."""
        proc = psutil.Process(self.pid)
        return {
            "children": len(proc.children(recursive=True)),
            "threads": proc.num_threads(),
            "fds": proc.num_fds(),
            "rss_bytes": proc.memory_info().rss,
        }


@contextlib.contextmanager
def running_daemon(
    ready_timeout: float = 180.0, tag: str = "", launcher: Sequence[str] = (str(SANDBOXD),)
) -> Iterator[Daemon]:
    """Start ``sandboxd serve`` on a free loopback port; wait for /readyz; stop and sweep on exit.

    ``launcher`` is the command that takes ``serve --port N`` (bench/ledger.py passes a bench-only one).
    Unless ``SANDBOXD_DATA_DIR`` or ``SANDBOXD_LEDGER_URL`` is set, the daemon gets a fresh data directory
    (ledger and key), removed afterwards: every run starts from an empty ledger, and benchmark entries
    never pile up in the checkout's ``var/`` ledger that ``make run`` uses (it had reached 365,000 of
    them, 519 MB).
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    instance = f"bench-{tag + '-' if tag else ''}{secrets.token_hex(4)}"
    port = free_port()
    log_path = RESULTS / f"daemon-{instance}.log"
    env = {**os.environ, "SANDBOXD_INSTANCE": instance, "SANDBOXD_PORT": str(port)}
    scratch_data = None
    if "SANDBOXD_DATA_DIR" not in env and "SANDBOXD_LEDGER_URL" not in env:
        scratch_data = tempfile.mkdtemp(prefix=f"sandboxd-{instance}-")
        env["SANDBOXD_DATA_DIR"] = scratch_data
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*launcher, "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    sampler = RssSampler(process.pid).start()
    daemon = Daemon(process, instance, base_url, log_path, sampler)
    try:
        deadline = time.monotonic() + ready_timeout
        with httpx.Client(base_url=base_url, timeout=5.0) as client:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/readyz").status_code == 200:
                        break
                if process.poll() is not None:
                    raise RuntimeError(f"sandboxd exited with {process.returncode}; see {log_path}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"sandboxd not ready after {ready_timeout}s; see {log_path}")
                time.sleep(0.1)
        yield daemon
    finally:
        sampler.stop()
        process.terminate()
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        left = docker_ids(f"label=sandboxd.instance={instance}")
        if left:  # only this benchmark's own instance is ever swept
            print(f"warning: {len(left)} containers of {instance} left after shutdown; removing them")
            subprocess.run(["docker", "rm", "-f", *left], capture_output=True, check=False, timeout=120)
        if scratch_data is not None:
            shutil.rmtree(scratch_data, ignore_errors=True)


def _wait_for(daemon: Daemon, condition: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> None:
    """Poll ``/readyz`` until ``condition`` holds for its body; ``what`` names the failure after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        state = daemon.readiness()
        if condition(state):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: {state}")
        time.sleep(0.1)


def wait_quiet(daemon: Daemon, timeout: float = 120.0) -> None:
    """Wait until every pool is back at its full warm count with nothing starting: no container start or
    teardown left from earlier work competes with what is measured next (both sides of a comparison).

    An AZR trainer calls the executor in bursts between minutes of GPU work, so each burst finds the pools
    refilled; ``wait_ready`` alone waits only for one warm sandbox per pool.
    """

    def quiet(state: dict[str, Any]) -> bool:
        # (a daemon older than these fields counts as quiet with one warm sandbox per pool)
        pools = state.get("pools", {}).values()
        return all(p["warm"] >= p.get("target", 1) and p.get("starting", 0) == 0 for p in pools)

    _wait_for(daemon, quiet, timeout, "pools did not refill")
    time.sleep(0.3)  # the last start's teardowns and the engine's own bookkeeping
    # Each poll above makes (and drops) an HTTP client. Left to the collector, that garbage was collected
    # in the first milliseconds of the measured work: 6-12 ms (finalizers that close sockets) of the AZR
    # step's client time, with the daemon idle. It is this harness's garbage, not the client library's.
    gc.collect()


def wait_ready(daemon: Daemon, timeout: float = 60.0, warm: dict[str, int] | None = None) -> None:
    """Wait until every pool has a warm sandbox again (pools refill in the background).

    With ``warm`` ({policy: count}), wait until those pools hold at least that many warm sandboxes,
    so that a batch can lease all the containers it may fan out over.
    """

    def ready(state: dict[str, Any]) -> bool:
        pools = state.get("pools", {})
        return bool(state.get("ready")) and all(pools[name]["warm"] >= n for name, n in (warm or {}).items())

    _wait_for(daemon, ready, timeout, "pools did not become ready again")


FORK_SERVERS = "fork-servers + runs"
SHIMS = "containerd-shim"


class CpuProfile:
    """Where the host's CPU goes while it runs: CPU seconds per process group, sampled at 10 Hz.

    Only this instance's containers count: fork-servers (PID 1 of each container, found through
    the ``-id`` of their parent shim) with their reaped children, that is the forked runs, and the
    shims themselves. dockerd and containerd are shared by every user of the host and are counted
    whole, with their reaped children. A process that exits keeps its last sample; one that
    appears counts from zero. ``other (unattributed)`` is the rest of the host's busy time:
    short-lived runc calls, the kernel, and whatever else (other users) runs on the host.
    """

    def __init__(self, daemon: Daemon, interval: float = 0.1) -> None:
        self.daemon_pid = daemon.pid
        self.me = os.getpid()
        self.interval = interval
        self.events = ContainerEvents(daemon.instance)
        self.mine: set[str] = set(docker_ids(f"label=sandboxd.instance={daemon.instance}"))
        self.first: dict[int, tuple[str, float]] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self._shim_ids: dict[int, str] = {}
        self._started = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cpu-profile", daemon=True)
        self._host_start: Any = None
        self._host_end: Any = None
        self._wall = 0.0
        self.seconds = 0.0

    def _shim_id(self, proc: psutil.Process) -> str:
        if proc.pid not in self._shim_ids:
            args = proc.cmdline()
            self._shim_ids[proc.pid] = args[args.index("-id") + 1] if "-id" in args[:-1] else ""
        return self._shim_ids[proc.pid]

    def _is_mine(self, shim: psutil.Process) -> bool:
        return self._shim_id(shim) in (self.mine | self.events.created)

    def _group(self, proc: psutil.Process, name: str, cmdline: list[str]) -> str | None:
        pid = proc.pid
        if pid == self.daemon_pid:
            return "sandboxd daemon"
        if pid == self.me:
            return "bench client"
        if name in ("dockerd", "containerd"):
            return f"{name} (host-wide)"
        if name.startswith("containerd-shim"):
            return SHIMS if self._is_mine(proc) else None
        if "sandboxd.runner" in " ".join(cmdline):
            parent = proc.parent()
            if (
                parent is not None
                and (parent.name() or "").startswith("containerd-shim")
                and self._is_mine(parent)
            ):
                return FORK_SERVERS
        return None  # a forked run is counted through its fork-server once reaped

    def _sample(self) -> None:
        for proc in psutil.process_iter(["name", "cmdline"]):
            try:
                group = self._group(proc, proc.info["name"] or "", proc.info["cmdline"] or [])
                if group is None:
                    continue
                times = proc.cpu_times()
                used = times.user + times.system
                if group != SHIMS:  # a shim's children include its container's init: counted above
                    used += times.children_user + times.children_system
            except psutil.Error:
                continue
            if proc.pid not in self.first:
                self.first[proc.pid] = (group, used if not self._started else 0.0)
            self.last[proc.pid] = (group, used)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> CpuProfile:
        self.events.__enter__()
        self._sample()
        self._started = True
        self._host_start = psutil.cpu_times()
        self._wall = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()
        self._host_end = psutil.cpu_times()
        self.seconds = time.perf_counter() - self._wall
        self.events.__exit__(*exc)

    def breakdown(self) -> dict[str, float]:
        """CPU seconds per group over the profiled span, plus ``other`` and ``host busy``."""
        groups: dict[str, float] = {}
        for pid, (group, used) in self.last.items():
            groups[group] = groups.get(group, 0.0) + max(0.0, used - self.first[pid][1])
        start, end = self._host_start, self._host_end
        busy = (end.user + end.system + getattr(end, "irq", 0) + getattr(end, "softirq", 0)) - (
            start.user + start.system + getattr(start, "irq", 0) + getattr(start, "softirq", 0)
        )
        groups["other (unattributed)"] = max(0.0, busy - sum(groups.values()))
        groups["host busy"] = busy
        groups["host capacity"] = self.seconds * (os.cpu_count() or 1)
        return groups


# -- the workload ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    index: int
    imports: tuple[str, ...]
    snippet: str
    input: str
    output: str
    script: str = field(repr=False)


def parse_imports(value: object) -> tuple[str, ...]:
    """The ``imports`` field: a list of import lines, or a string holding a Python list of them."""
    if isinstance(value, str):
        value = ast.literal_eval(value) if value.strip() else []
    if not isinstance(value, list) or not all(isinstance(line, str) for line in value):
        raise ValueError(f"imports is not a list of strings: {value!r:.80}")
    return tuple(value)


def is_single_call(input_text: str) -> bool:
    """DESIGN.md §1: ``f(<input>)`` must parse as one call of ``f`` with plain argument expressions."""
    try:
        tree = ast.parse(f"f({input_text})", mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    call = tree.body
    return (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == "f"
        and not any(isinstance(arg, ast.Starred) for arg in call.args)
        and all(keyword.arg is not None for keyword in call.keywords)
    )


def build_script(imports: Sequence[str], snippet: str, input_text: str) -> str:
    """Imports, the snippet, then ``f(<input>)`` twice; the last line of stdout carries the result."""
    return (
        "\n".join(imports)
        + "\n"
        + snippet
        + "\n"
        + f"__bench_a = f({input_text})\n"
        + f"__bench_b = f({input_text})\n"
        + "__import__('sys').stdout.write("
        + repr(SENTINEL)
        + " + str(int(repr(__bench_a) == repr(__bench_b))) + repr(__bench_a))\n"
    )


def load_workload(path: Path = WORKLOAD) -> tuple[list[Row], int]:
    """The rows whose input passes :func:`is_single_call`, and the number rejected."""
    rows: list[Row] = []
    rejected = 0
    with path.open(encoding="utf-8") as lines:
        for index, line in enumerate(lines):
            data = json.loads(line)
            if not is_single_call(data["input"]):
                rejected += 1
                continue
            imports = parse_imports(data.get("imports", []))
            script = build_script(imports, data["snippet"], data["input"])
            rows.append(Row(index, imports, data["snippet"], data["input"], data["output"], script))
    return rows, rejected


def parse_stdout(stdout: str) -> tuple[bool, str] | None:
    """(both calls gave the same repr, the repr) from a run's stdout, or None if it never got there."""
    _, found, tail = stdout.rpartition(SENTINEL)
    if not found or not tail:
        return None
    return tail[0] == "1", tail[1:]


def azr_truncate(text: str) -> str:
    if len(text) <= AZR_TRUNCATE:
        return text
    return text[: AZR_TRUNCATE // 2] + "..." + text[-AZR_TRUNCATE // 2 :]


def _literal(text: str) -> tuple[bool, Any]:
    if len(text) > 100_000:
        return False, None
    try:
        return True, ast.literal_eval(text)  # parses data; never runs code
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None


def matches_recorded(actual_repr: str, recorded: str) -> bool:
    """Sanity check against AZR's recorded output: same text, same truncated text, or equal literals."""
    if actual_repr in (recorded, azr_truncate(recorded)) or azr_truncate(actual_repr) == recorded:
        return True
    ok_a, value_a = _literal(actual_repr)
    ok_b, value_b = _literal(recorded)
    if not (ok_a and ok_b):
        return False
    try:
        return type(value_a) is type(value_b) and bool(value_a == value_b)
    except Exception:  # literals only, but a sanity check must never break the bench
        return False


# -- statistics and reporting ------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100), as numpy's default."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize_ms(seconds: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(seconds),
        "p50_ms": percentile(seconds, 50) * 1000,
        "p90_ms": percentile(seconds, 90) * 1000,
        "p99_ms": percentile(seconds, 99) * 1000,
        "max_ms": max(seconds) * 1000 if seconds else math.nan,
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def target_line(name: str, value: str, target: str, ok: bool) -> str:
    return f"  {verdict(ok):4}  {name:<38} {value:>14}   target {target}"


def machine() -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average": os.getloadavg(),
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
