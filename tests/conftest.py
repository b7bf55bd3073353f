"""Shared fixtures. Docker-marked tests run against a real server, real containers and real seccomp."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandboxd.settings import BUILTIN_POLICIES, Settings
from sandboxd.testing import running_server

TEST_POLICIES = Path(__file__).parent / "policies"
DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def runsc_available() -> bool:
    """Whether the Docker engine has the gVisor runtime registered."""
    try:
        out = subprocess.run(
            ["docker", "info", "--format", "{{json .Runtimes}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
        return "runsc" in json.loads(out or "{}")
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return False


RUNSC = runsc_available()
needs_runsc = pytest.mark.skipif(not RUNSC, reason="gVisor (runsc) is not registered with the Docker engine")


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
    """A real sandboxd on loopback with warm pools for every policy."""
    settings = Settings(instance=f"test-{uuid.uuid4().hex[:8]}", policies_dir=policies_dir)
    with running_server(settings) as url:
        yield url


@pytest.fixture(scope="session")
def client(server_url: str) -> Iterator[httpx.Client]:
    """An HTTP client for the session's server."""
    with httpx.Client(base_url=server_url, timeout=120.0) as http:
        yield http
