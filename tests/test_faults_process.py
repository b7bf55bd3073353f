"""The daemon process itself under faults: overload, SIGTERM and SIGKILL, with a real ``sandboxd serve``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from daemon_process import containers, daemon, settle

from sandboxd.image import runner_image_tag
from sandboxd.settings import BUILTIN_POLICIES

pytestmark = [pytest.mark.docker, pytest.mark.slow]
MiB = 1024 * 1024
FLOOD = 24  # concurrent large requests


def policies(tmp_path: Path, **pool: int) -> Path:
    """The built-in default policy with some ``pool:`` options replaced."""
    directory = tmp_path / "policies"
    directory.mkdir(exist_ok=True)
    lines = (BUILTIN_POLICIES / "default.yaml").read_text().splitlines()
    for key, value in pool.items():
        [index] = [i for i, line in enumerate(lines) if line.startswith(f"  {key}:")]
        lines[index] = f"  {key}: {value}"
    (directory / "default.yaml").write_text("\n".join(lines) + "\n")
    return directory


def instance(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}"


def in_background(call: Callable[[], httpx.Response]) -> Callable[[], httpx.Response]:
    outcome: dict[str, httpx.Response] = {}
    thread = threading.Thread(target=lambda: outcome.update(r=call()))
    thread.start()

    def result() -> httpx.Response:
        thread.join(timeout=120)
        return outcome["r"]

    return result


class HealthWatch:
    """Polls /healthz from a thread; records failures and the slowest answer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.failures: list[str] = []
        self.slowest = 0.0
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    status = client.get("/healthz").status_code
                except httpx.TransportError as exc:
                    self.failures.append(repr(exc))
                else:
                    if status != 200:
                        self.failures.append(f"HTTP {status}")
                self.slowest = max(self.slowest, time.monotonic() - started)
                self.polls += 1
                time.sleep(0.1)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def flood(url: str, requests: int, body: bytes) -> list[httpx.Response]:
    """``requests`` concurrent batch posts of ``body``, each on its own connection."""

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=url, timeout=120) as client:
            return client.post("/v1/runs/batch", content=body, headers={"content-type": "application/json"})

    with ThreadPoolExecutor(requests) as workers:
        return list(workers.map(post, range(requests)))


def large_batch(runs: int, code_bytes: int) -> bytes:
    code = "#" * (code_bytes - 5) + "\npass"
    return json.dumps({"runs": [{"code": code}] * runs}).encode()


def test_overload_backpressure_bounded_memory_and_health(tmp_path: Path) -> None:
    """A flood of large requests: 503 + Retry-After, daemon RSS bounded, /healthz answers throughout."""
    directory = policies(tmp_path, warm_containers=1, max_waiting_requests=2, admission_timeout_seconds=20)
    env = {"SANDBOXD_MAX_INFLIGHT_BODY_BYTES": str(48 * MiB), "SANDBOXD_MAX_INFLIGHT_REQUESTS": "16"}
    with daemon(instance("flood"), directory, tmp_path / "daemon.log", env) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            hold = in_background(lambda: client.post("/v1/runs", json={"code": "import time; time.sleep(8)"}))
            time.sleep(1.0)
            baseline = server.rss_bytes()
            body = large_batch(runs=400, code_bytes=60_000)  # 24 MB per request, under the 32 MiB cap
            with HealthWatch(server.url) as health:
                answers = flood(server.url, requests=FLOOD, body=body)
            peak = server.rss_bytes("VmHWM")
            assert hold().status_code == 200
        codes = [answer.status_code for answer in answers]
        refused = [answer for answer in answers if answer.status_code == 503]
        unexpected = [answer.text[:300] for answer in answers if answer.status_code not in (200, 503)]
        assert not unexpected, unexpected
        assert len(refused) >= 10, codes
        assert all(answer.headers.get("retry-after") for answer in refused)
        assert {answer.json()["error"] for answer in refused} <= {"overloaded", "unavailable"}
        assert not health.failures, health.failures
        assert health.polls > 5
        assert health.slowest < 2.0, f"/healthz took {health.slowest:.2f}s under the flood"
        growth = peak - baseline
        print(
            f"flood: {len(body) / MiB:.1f} MiB x {FLOOD}: codes {sorted(set(codes))}, {len(refused)} refused; "
            f"RSS {baseline / MiB:.0f} MiB -> peak {peak / MiB:.0f} MiB; /healthz max {health.slowest:.3f}s"
        )
        # Without the body budget the same flood grows it by well over 600 MiB (the bodies held at once).
        assert growth < 256 * MiB, f"RSS grew by {growth / MiB:.0f} MiB"


def test_sigterm_drains_in_flight_runs_then_removes_containers(tmp_path: Path) -> None:
    """SIGTERM: new requests 503 at once, the batch in flight completes, then no container remains."""
    name = instance("drain")
    env = {"SANDBOXD_SHUTDOWN_GRACE_SECONDS": "30"}
    with daemon(name, policies(tmp_path, warm_containers=2), tmp_path / "daemon.log", env) as server:
        assert len(containers(name)) >= 2
        with httpx.Client(base_url=server.url, timeout=60) as client:
            runs = [{"code": "import time; time.sleep(3); print('done')"}] * 4
            batch = in_background(lambda: client.post("/v1/runs/batch", json={"runs": runs}))
            time.sleep(1.0)
            server.process.send_signal(signal.SIGTERM)
            settle(lambda: client.get("/readyz").status_code == 503, 5)
            assert client.get("/readyz").json()["reason"] == "shutting down"
            late = client.post("/v1/runs", json={"code": "print(1)"})
            assert late.status_code == 503
            assert late.json()["error"] == "shutting_down"
            assert late.headers["retry-after"]
            assert client.get("/healthz").status_code == 200
            response = batch()
        assert response.status_code == 200, response.text
        assert [r["stdout"] for r in response.json()["results"]] == ["done\n"] * 4
        assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)
        assert containers(name) == []


def test_sigterm_grace_expiry_answers_instead_of_cutting(tmp_path: Path) -> None:
    """Runs still going when the grace period ends get 503 shutting down; the daemon exits promptly."""
    name = instance("grace")
    env = {"SANDBOXD_SHUTDOWN_GRACE_SECONDS": "2"}
    with daemon(name, policies(tmp_path, warm_containers=1), tmp_path / "daemon.log", env) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            slow = in_background(
                lambda: client.post("/v1/runs", json={"code": "import time; time.sleep(30)"})
            )
            time.sleep(1.0)
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            response = slow()
        assert response.status_code == 503, response.text
        assert "shutting down" in response.json()["detail"]
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
        assert time.monotonic() - started < 20
        assert containers(name) == []


def test_restart_after_sigkill_removes_only_own_orphans(tmp_path: Path) -> None:
    """SIGKILL with warm pools, then restart: the instance's orphans go, other instances' stay."""
    name, other = instance("crash"), instance("bystander")
    directory = policies(tmp_path, warm_containers=2)
    labels = ["--label", "sandboxd.managed=1", "--label", f"sandboxd.instance={other}"]
    bystander = subprocess.run(
        ["docker", "create", *labels, "--network", "none", runner_image_tag()],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        with daemon(name, directory, tmp_path / "first.log") as first:
            orphans = set(containers(name))
            assert len(orphans) >= 2
            os.kill(first.process.pid, signal.SIGKILL)
            first.process.wait(timeout=30)
        assert orphans <= set(containers(name)), "SIGKILL left nothing behind: the test proves nothing"
        with daemon(name, directory, tmp_path / "second.log") as second:
            assert not orphans & set(containers(name))
            with httpx.Client(base_url=second.url, timeout=60) as client:
                assert client.post("/v1/runs", json={"code": "print(1)"}).json()["status"] == "ok"
            assert containers(other) == [bystander[:12]]
    finally:
        subprocess.run(["docker", "rm", "-f", bystander], capture_output=True, check=False)
        leftovers = containers(name)
        if leftovers:
            subprocess.run(["docker", "rm", "-f", *leftovers], capture_output=True, check=False)
