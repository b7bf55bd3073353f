"""Shared fixtures. Docker-marked tests run against a real server, real containers and real seccomp."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from postgres_server import PostgresServer

from sandboxd.image import runner_image_tag
from sandboxd.settings import BUILTIN_POLICIES, Settings
from sandboxd.testing import running_server

TEST_POLICIES = Path(__file__).parent / "policies"
DATA = Path(__file__).resolve().parent / "data"  # copies of ../shared/data, with their LICENSEs


def runsc_problem() -> str | None:
    """Why gVisor cannot run sandboxes here, or None when a runsc container starts."""
    try:
        runtimes = subprocess.run(
            ["docker", "info", "--format", "{{json .Runtimes}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
        if "runsc" not in json.loads(runtimes or "{}"):
            return "gVisor (runsc) is not registered with the Docker engine"
        probe = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "--runtime", "runsc", runner_image_tag(), "true"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        return f"cannot probe runsc: {exc}"
    if probe.returncode != 0:
        return f"runsc is registered but cannot start a container: {probe.stderr.strip()[-300:]}"
    return None


RUNSC_PROBLEM = runsc_problem()
RUNSC = RUNSC_PROBLEM is None
needs_runsc = pytest.mark.skipif(not RUNSC, reason=RUNSC_PROBLEM or "")


@pytest.fixture(scope="session", autouse=True)
def ledger_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every app the tests create keeps its ledger and key in a temp dir, never in the checkout's var/."""
    directory = tmp_path_factory.mktemp("data")
    saved = os.environ.get("SANDBOXD_DATA_DIR")
    os.environ["SANDBOXD_DATA_DIR"] = str(directory)
    yield directory
    if saved is None:
        os.environ.pop("SANDBOXD_DATA_DIR", None)
    else:
        os.environ["SANDBOXD_DATA_DIR"] = saved


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (tests/postgres_server.py); ``.database()`` per test."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def policies_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built-in policies plus the test-only ones (gvisor only where runsc exists)."""
    directory = tmp_path_factory.mktemp("policies")
    for source in [*BUILTIN_POLICIES.glob("*.yaml"), *TEST_POLICIES.glob("*.yaml")]:
        if source.name == "gvisor.yaml" and not RUNSC:
            continue
        shutil.copy(source, directory / source.name)
    return directory


@pytest.fixture(scope="session")
def server_url(policies_dir: Path) -> Iterator[str]:
    """A real sandboxd on loopback with warm pools for every policy.

    It speaks to its fork-servers over the default channel (``transport="auto"``: the unix socket under
    runc, attach under gVisor); ``docker attach`` under runc is covered by test_forkserver_spares.py.
    """
    settings = Settings(instance=f"test-{uuid.uuid4().hex[:8]}", policies_dir=policies_dir, transport="auto")
    with running_server(settings) as url:
        yield url


@pytest.fixture(scope="session")
def client(server_url: str) -> Iterator[httpx.Client]:
    """An HTTP client for the session's server."""
    with httpx.Client(base_url=server_url, timeout=120.0) as http:
        yield http
