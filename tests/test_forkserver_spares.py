"""Children forked in bursts ahead of their runs (runner/forkserver.py ``Spare``), on real containers.

Each spare must get exactly its own run (job and stdin), its wall time must start when it gets the
run rather than at its fork, and a burst that hits the container's pids limit must shrink, not fail.
Every test runs over both channels to the fork-server: the default unix socket and ``docker attach``
(the only place the suite drives attach under runc; gVisor policies always use it).
"""

from __future__ import annotations

import contextlib
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from api_support import posted_results

from sandboxd.settings import BUILTIN_POLICIES, Settings
from sandboxd.testing import running_server

pytestmark = pytest.mark.docker
INSTANCE_PREFIX = "test-spares-"

TIGHT = """\
schema_version: 1
kind: sandbox
name: tight
extends: default
description: Test-only. Four pids, so a burst of spares is cut short by the pids limit.
container:
  pids_limit: 4
pool:
  warm_containers: 1
  max_parallel_runs: 2
"""


@pytest.fixture(scope="module", params=["auto", "attach"])
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    policies = tmp_path_factory.mktemp("policies")
    for source in BUILTIN_POLICIES.glob("*.yaml"):
        shutil.copy(source, policies / source.name)
    (policies / "tight.yaml").write_text(TIGHT)
    settings = Settings(
        instance=f"{INSTANCE_PREFIX}{uuid.uuid4().hex[:8]}", policies_dir=policies, transport=request.param
    )
    with running_server(settings) as url, httpx.Client(base_url=url, timeout=120) as http:
        yield http


def _batch(client: httpx.Client, runs: list[dict[str, Any]], policy: str = "default") -> list[dict[str, Any]]:
    return posted_results(client, "/v1/runs/batch", {"runs": runs, "policy": policy})


@pytest.mark.parametrize("policy", ["default", "tight"])
def test_every_spare_runs_its_own_job_and_stdin(client: httpx.Client, policy: str) -> None:
    """Many more runs than one burst: each answer carries its own code's and stdin's marker."""
    runs = [
        {"code": f"import sys\nprint('job-{index}', sys.stdin.read())", "stdin": f"stdin-{index}"}
        for index in range(40)
    ]
    results = _batch(client, runs, policy)
    assert [result["status"] for result in results] == ["ok"] * len(runs)
    assert [result["stdout"] for result in results] == [f"job-{index} stdin-{index}\n" for index in range(40)]


def test_wall_time_starts_when_the_spare_gets_its_run(client: httpx.Client) -> None:
    """Eight 0.6 s sleeps, two at a time, under a 1 s wall limit: a spare that waited is not charged."""
    runs = [
        {"code": "import time\ntime.sleep(0.6)\nprint('slept')", "limits": {"wall_time_seconds": 1.0}}
    ] * 8
    results = _batch(client, runs)
    assert [result["status"] for result in results] == ["ok"] * len(runs)
    assert all(float(str(result["wall_time_seconds"])) < 1.0 for result in results)


def test_the_pids_limit_is_still_enforced_on_model_code(client: httpx.Client) -> None:
    """Spares take pids, but a child still cannot fork (nproc 0, seccomp): the verdict is unchanged."""
    code = "import os\nos.fork()\nprint('forked')"
    result = _batch(client, [{"code": code}], "tight")[0]
    assert result["status"] in {"runtime_error", "sandbox_violation"}
    assert "forked" not in str(result["stdout"])


def _private_dirty_kb(host_pid: int) -> int:
    for line in Path(f"/proc/{host_pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Private_Dirty:"):
            return int(line.split()[1])
    return 0


def _readiness(client: httpx.Client) -> dict[str, Any]:
    return dict(client.get("/readyz").json()["pools"]["default"])


def _default_container_pids(instance_prefix: str) -> dict[str, dict[int, int]]:
    """For each running default-policy container of this module's daemon (by its 12-character id), its
    processes: the pid in its own pid namespace to the host's (``docker top``, then each one's ``NSpid``)."""
    engine = docker.from_env()
    found: dict[str, dict[int, int]] = {}
    try:
        for box in engine.containers.list(filters={"label": ["sandboxd.policy=default"]}):
            if not box.labels.get("sandboxd.instance", "").startswith(instance_prefix):
                continue
            try:
                top = box.top()
            except docker.errors.APIError:  # gone since the listing (a used one, destroyed)
                continue
            column = top["Titles"].index("PID")
            pids = {}
            for row in top["Processes"] or []:  # None while it starts
                with contextlib.suppress(OSError):
                    status = Path(f"/proc/{row[column]}/status").read_text()
                    pids[int(status.split("NSpid:")[1].split("\n")[0].split()[-1])] = int(row[column])
            found[box.id[:12]] = pids
    finally:
        engine.close()
    return found


def test_a_replacement_forks_warm_spares_and_the_next_request_runs_in_them(client: httpx.Client) -> None:
    """A container used by a request of 40 runs is replaced by one that forks 40 spares while it waits in
    the pool (pool.warm_spares). The next request of 40 leases it (the best fit) and its runs go to those
    spares: each its own job, stdin and process, none forked during the request (their pids are the
    first of the container's pid namespace), and a spare that waited seconds is not charged that wait."""
    runs = [
        {"code": f"import os, sys\nprint({i}, sys.stdin.read(), os.getpid())", "stdin": f"in-{i}"}
        for i in range(40)
    ]
    assert [r["status"] for r in _batch(client, runs)] == ["ok"] * 40
    deadline = time.monotonic() + 120
    while True:  # the used container is replaced; the new one forks its spares before it is warm
        state = _readiness(client)
        before = _default_container_pids(INSTANCE_PREFIX)
        if state["warm"] >= state["target"] and state["starting"] == 0 and len(before) >= state["target"]:
            break
        assert time.monotonic() < deadline, (state, before)
        time.sleep(0.2)
    assert 40 in state["warm_spares"], state
    spares = max(before.values(), key=len)
    dirty = sorted(_private_dirty_kb(host) for pid, host in spares.items() if pid > 2)
    time.sleep(1.5)  # longer than the wall limit below: a spare's wait is not its run's time
    timed = [{**run, "limits": {"wall_time_seconds": 1.0}} for run in runs]
    results = _batch(client, timed)
    assert [r["status"] for r in results] == ["ok"] * 40
    lines = [str(r["stdout"]).split() for r in results]
    assert [line[:2] for line in lines] == [[str(i), f"in-{i}"] for i in range(40)]
    pids = {int(line[2]) for line in lines}
    assert len(pids) == 40  # a fresh process per program
    [box] = {str(r["sandbox_id"]) for r in results}
    # PID 1, its spawner and the 40 spares were there before the request (nothing here starts a
    # zygote), and every run was one of those spares: none was forked for the request
    assert len(before[box]) >= 42, before
    assert pids <= set(before[box]), (sorted(pids), sorted(before[box]))
    # each spare had written the pages a probe run wrote (pool.spare_pages) while it waited: over 1 MB
    # of its own, where a spare without them holds a few pages
    assert dirty[len(dirty) // 2] > 1024, dirty
