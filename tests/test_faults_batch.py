"""Containers and fork-servers killed from outside in the middle of a batch, on real containers.

A run lost once is retried on a fresh sandbox (programs have no side effects). A run lost twice gets
``infrastructure_error``: retryable, never a verdict about the program, and never ``internal_error``,
which is reserved for sandboxd bugs. The other runs complete, and the pool refills.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from daemon_process import settle
from policy_support import with_warm_containers

from sandboxd.settings import BUILTIN_POLICIES, Settings
from sandboxd.testing import running_server

pytestmark = [pytest.mark.docker, pytest.mark.slow]
WARM = 2
SLOW = "import time; time.sleep(5); print('slow')"
FAST = "print('fast')"


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def running(instance: str) -> list[str]:
    return docker("ps", "-q", "--filter", f"label=sandboxd.instance={instance}").split()


def processes(container: str) -> list[tuple[int, int, str]]:
    """(host pid, host ppid, command) of every process in the container; [] once it is gone."""
    try:
        rows = docker("top", container, "-o", "pid,ppid,args").splitlines()[1:]
    except subprocess.CalledProcessError:
        return []
    return [(int(pid), int(ppid), args) for pid, ppid, args in (row.split(None, 2) for row in rows)]


def programs(container: str) -> list[tuple[int, int]]:
    """(host pid, host ppid) of the container's locked-down children, the ones running a program: they
    alone carry a second seccomp filter (the fork-server's, over the container's). PID 1, the spawner,
    zygotes and idle spares carry one."""
    found = []
    for pid, ppid, _ in processes(container):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if "Seccomp_filters:\t2" in status:
            found.append((pid, ppid))
    return found


def busy_container(
    instance: str, exclude: frozenset[str] = frozenset(), *, under_zygote: bool = False
) -> str:
    """Wait for a container of ``instance`` running a program (one forked by a zygote, if asked)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for container in running(instance):
            if container in exclude:
                continue
            init = int(docker("inspect", "-f", "{{.State.Pid}}", container))
            if any(not under_zygote or ppid != init for _, ppid in programs(container)):
                return container
        time.sleep(0.2)
    raise AssertionError("no container with runs in flight")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[httpx.Client, str]]:
    policies = tmp_path / "policies"
    policies.mkdir()
    text = (BUILTIN_POLICIES / "default.yaml").read_text()
    (policies / "default.yaml").write_text(with_warm_containers(text, WARM))
    settings = Settings(instance=f"faults-{uuid.uuid4().hex[:8]}", policies_dir=policies)
    with running_server(settings) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield client, settings.instance


def in_background(client: httpx.Client, runs: list[dict[str, str]]) -> Callable[[], list[dict[str, str]]]:
    """Send a batch from a thread; the returned function waits for its results."""
    outcome: dict[str, httpx.Response] = {}
    sender = threading.Thread(
        target=lambda: outcome.update(r=client.post("/v1/runs/batch", json={"runs": runs}))
    )
    sender.start()
    time.sleep(1.5)  # the fast runs are done; only slow ones keep processes alive

    def results() -> list[dict[str, str]]:
        sender.join(timeout=120)
        response = outcome["r"]
        assert response.status_code == 200, response.text
        body: list[dict[str, str]] = response.json()["results"]
        return body

    return results


def pool_refilled(client: httpx.Client, instance: str) -> None:
    settle(lambda: client.get("/readyz").json()["pools"]["default"]["warm"] == WARM)
    settle(lambda: len(running(instance)) == WARM)
    assert client.post("/v1/runs", json={"code": FAST}).json()["status"] == "ok"


def test_run_lost_twice_is_infrastructure_error(server: tuple[httpx.Client, str]) -> None:
    """Container killed, then its replacement: those runs are infrastructure_error, the rest ok."""
    client, instance = server
    results = in_background(client, [{"code": FAST}] * 4 + [{"code": SLOW}] * 2)
    first = busy_container(instance)
    docker("kill", first)
    second = busy_container(instance, exclude=frozenset({first}))
    docker("kill", second)
    statuses = [r["status"] for r in results()]
    assert statuses == ["ok"] * 4 + ["infrastructure_error"] * 2
    assert "lost twice" in results()[4]["detail"]
    pool_refilled(client, instance)


def test_fork_server_killed_mid_batch(server: tuple[httpx.Client, str]) -> None:
    """The fork-server (PID 1 of the container) SIGKILLed from the host: its runs are retried, all ok."""
    client, instance = server
    results = in_background(client, [{"code": SLOW}] + [{"code": FAST}] * 3)
    victim = busy_container(instance)
    fork_server = int(docker("inspect", "-f", "{{.State.Pid}}", victim))
    os.kill(fork_server, signal.SIGKILL)
    done = results()
    assert [r["status"] for r in done] == ["ok"] * 4
    assert done[0]["stdout"] == "slow\n"
    assert not done[0]["sandbox_id"] or not victim.startswith(done[0]["sandbox_id"])
    pool_refilled(client, instance)


def test_heavy_zygote_killed_mid_batch(server: tuple[httpx.Client, str]) -> None:
    """The numpy zygote (a second fork-server) killed under a run: retried, ok; the sandbox lives on."""
    client, instance = server
    heavy = "import numpy, time; time.sleep(5); print(int(numpy.arange(4).sum()))"
    results = in_background(client, [{"code": heavy}, {"code": FAST}])
    victim = busy_container(instance, under_zygote=True)  # the zygote has a child running
    table = processes(victim)
    init = int(docker("inspect", "-f", "{{.State.Pid}}", victim))
    parents = {ppid for _, ppid, _ in table}
    [zygote] = [pid for pid, ppid, _ in table if ppid == init and pid in parents]
    os.kill(zygote, signal.SIGKILL)
    done = results()
    assert [r["status"] for r in done] == ["ok", "ok"]
    assert done[0]["stdout"] == "6\n"
    pool_refilled(client, instance)
