"""Sandboxes are scheduled as batch work (ContainerOptions.scheduling, runner/forkserver.py ``_schedule``).

The fork-server puts itself under SCHED_BATCH at ``configure``, before it forks the spawner, so every
child inherits it. Host tests run the fork-server as a plain subprocess (forkserver_support); the real
containers are covered by test_attacks.py, whose rows also show that a child cannot change it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from forkserver_support import LocalForkServer

from sandboxd.policy import load_policies
from sandboxd.seccomp import container_profile
from sandboxd.service import configure_message
from sandboxd.settings import BUILTIN_POLICIES

READ_POLICY = "import os\nprint(os.sched_getscheduler(0))"


@pytest.fixture(params=["batch", "normal"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, LocalForkServer]]:
    started = LocalForkServer(tmp_path, scheduling=request.param)
    try:
        yield request.param, started
    finally:
        started.close()


def test_children_run_under_the_configured_policy(server: tuple[str, LocalForkServer]) -> None:
    wanted, forkserver = server
    assert forkserver.configured["scheduling"] == wanted
    expected = os.SCHED_BATCH if wanted == "batch" else os.SCHED_OTHER
    for _ in range(3):  # spares come from the spawner, forked after the policy was set
        result = forkserver.run(READ_POLICY)
        assert result["exit_code"] == 0, result["stderr"]
        assert int(result["stdout"]) == expected


def test_the_default_policy_asks_for_batch_and_only_the_fork_server_may_set_it() -> None:
    policy = load_policies(BUILTIN_POLICIES)["default"]
    assert policy.container.scheduling == "batch"
    assert configure_message(policy)["scheduling"] == "batch"
    engine = json.loads(container_profile(policy))["syscalls"][0]["names"]
    assert "sched_setscheduler" in engine  # the engine's filter, which the fork-server runs under
    assert "sched_setattr" not in engine
    assert "sched_setscheduler" not in policy.syscalls  # the children's allowlist
    assert "sched_setattr" not in policy.syscalls
