"""Every sandbox container is created with the settings the security model relies on (issue 2, item 3).

The behaviour behind each setting is proven by the attack suite (tests/test_attacks.py); this test pins
the settings themselves on real containers, so a refactor of the backend cannot drop one silently.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from sandboxd.settings import Settings
from sandboxd.testing import running_server

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def containers() -> Iterator[list[dict[str, Any]]]:
    """``docker inspect`` of the warm default-policy containers of a fresh server."""
    instance = f"test-settings-{uuid.uuid4().hex[:8]}"
    engine = docker.from_env()
    try:
        with running_server(Settings(instance=instance)):
            found = engine.containers.list(
                filters={"label": [f"sandboxd.instance={instance}", "sandboxd.policy=default"]}
            )
            yield [container.attrs for container in found]
    finally:
        engine.close()


def _netns(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def test_there_are_warm_containers_to_inspect(containers: list[dict[str, Any]]) -> None:
    assert len(containers) >= 2  # the default policy keeps two warm; the netns test compares them


def test_no_network_and_no_libnetwork_sandbox(containers: list[dict[str, Any]]) -> None:
    """--network none with networking disabled: no interfaces but lo, and no per-start dockerd hook."""
    for attrs in containers:
        assert attrs["HostConfig"]["NetworkMode"] == "none"
        assert attrs["Config"]["NetworkDisabled"] is True
        assert attrs["NetworkSettings"]["Networks"] in ({}, None)


def test_each_container_has_its_own_network_namespace_with_only_lo(containers: list[dict[str, Any]]) -> None:
    pids = [attrs["State"]["Pid"] for attrs in containers]
    namespaces = [_netns(pid) for pid in pids]
    assert len(set(namespaces)) == len(namespaces)  # not shared between sandboxes
    assert _netns(os.getpid()) not in namespaces  # not the host's
    for pid in pids:
        interfaces = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]  # seen from its netns
        assert [line.split(":")[0].strip() for line in interfaces] == ["lo"]


def test_locked_down_host_config(containers: list[dict[str, Any]]) -> None:
    for attrs in containers:
        host = attrs["HostConfig"]
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"]
        assert not host.get("CapAdd")
        assert host["Privileged"] is False
        assert "no-new-privileges:true" in host["SecurityOpt"]
        assert any(opt.startswith("seccomp=") and len(opt) > 100 for opt in host["SecurityOpt"])
        assert host["IpcMode"] == "none"
        assert host["PidsLimit"]
        assert host["PidsLimit"] > 0
        assert host["Memory"] > 0
        assert host["MemorySwap"] == host["Memory"]
        assert host["NanoCpus"] > 0
        assert host["LogConfig"]["Type"] == "none"
        assert set(host["Tmpfs"]) == {"/scratch"}
        assert "size=" in host["Tmpfs"]["/scratch"]
        assert "nr_inodes=" in host["Tmpfs"]["/scratch"]
        assert attrs["Config"]["User"] not in ("", "0", "root", "0:0")
        sources = [mount.get("Source", "") for mount in attrs["Mounts"]]
        assert not any(source.endswith("docker.sock") for source in sources)


def test_the_fork_server_binds_its_library_calls_at_start(containers: list[dict[str, Any]]) -> None:
    """LD_BIND_NOW: every child inherits a bound GOT instead of looking up (and copying the GOT page
    for) each library function the fork-server had not called yet (docs/design.md)."""
    for attrs in containers:
        assert "LD_BIND_NOW=1" in attrs["Config"]["Env"]
        environ = Path(f"/proc/{attrs['State']['Pid']}/environ").read_bytes().split(b"\0")
        assert b"LD_BIND_NOW=1" in environ  # what PID 1, the fork-server, was started with
