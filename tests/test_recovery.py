"""Recovery and fail-closed behaviour against the real engine."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from sandboxd.image import runner_image_tag
from sandboxd.settings import Settings
from sandboxd.testing import running_server

pytestmark = pytest.mark.docker


def containers(instance: str, *, running_only: bool = False) -> list[str]:
    command = ["docker", "ps", "-q", "--filter", f"label=sandboxd.instance={instance}"]
    if not running_only:
        command.insert(2, "-a")
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()


def settle(condition: object, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.2)


def only_default(policies_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    target.mkdir()
    for name in ("default.yaml", "reuse.yaml"):
        (target / name).write_text((policies_dir / name).read_text())
    return target


def test_orphans_of_a_crashed_daemon_are_removed(policies_dir: Path, tmp_path: Path) -> None:
    """Containers labelled with this instance, left by a crashed daemon, are removed at startup."""
    instance = f"orphan-{uuid.uuid4().hex[:8]}"
    labels = ["--label", "sandboxd.managed=1", "--label", f"sandboxd.instance={instance}"]
    subprocess.run(
        ["docker", "create", *labels, "--network", "none", runner_image_tag()],
        check=True,
        capture_output=True,
    )
    orphans = containers(instance)
    assert len(orphans) == 1
    settings = Settings(instance=instance, policies_dir=only_default(policies_dir, tmp_path))
    with running_server(settings):
        assert orphans[0] not in " ".join(containers(instance))
    settle(lambda: containers(instance) == [])


def test_killed_warm_container_is_replaced(policies_dir: Path, tmp_path: Path) -> None:
    """A warm container killed from outside is dropped, removed and replaced; runs keep working."""
    instance = f"kill-{uuid.uuid4().hex[:8]}"
    settings = Settings(instance=instance, policies_dir=only_default(policies_dir, tmp_path))
    with running_server(settings) as url, httpx.Client(base_url=url, timeout=60) as client:
        victims = containers(instance, running_only=True)
        subprocess.run(["docker", "kill", *victims], check=True, capture_output=True)
        for _ in range(3):
            assert client.post("/v1/runs", json={"code": "print('alive')"}).json()["stdout"] == "alive\n"
        settle(lambda: not set(victims) & set(containers(instance)))
        assert client.get("/readyz").status_code == 200


def test_container_killed_mid_batch(policies_dir: Path, tmp_path: Path) -> None:
    """Runs in flight when their container is killed are retried once on a fresh one; all complete."""
    instance = f"midbatch-{uuid.uuid4().hex[:8]}"
    settings = Settings(instance=instance, policies_dir=only_default(policies_dir, tmp_path))
    with running_server(settings) as url, httpx.Client(base_url=url, timeout=120) as client:
        reuse_container = client.post("/v1/runs", json={"code": "pass", "policy": "reuse"}).json()[
            "sandbox_id"
        ]
        runs = [{"code": "import time; time.sleep(3); print('slow')"}] + [{"code": "print('fast')"}] * 4
        outcome: dict[str, object] = {}

        def send() -> None:
            outcome["response"] = client.post("/v1/runs/batch", json={"policy": "reuse", "runs": runs})

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(1.0)
        subprocess.run(["docker", "kill", reuse_container], check=True, capture_output=True)
        sender.join(timeout=60)
        response = outcome["response"]
        assert isinstance(response, httpx.Response)
        results = response.json()["results"]
        assert [r["status"] for r in results] == ["ok"] * 5
        assert results[0]["stdout"] == "slow\n"
        assert results[0]["sandbox_id"] != reuse_container
        assert client.post("/v1/runs", json={"code": "print(1)", "policy": "reuse"}).json()["status"] == "ok"


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        pytest.param({"docker_url": "unix:///nonexistent/docker.sock"}, "unreachable", id="no-engine"),
        pytest.param({"image": "sandboxd-runner:does-not-exist"}, "image missing", id="no-image"),
    ],
)
def test_fails_closed_without_isolation(
    policies_dir: Path, tmp_path: Path, override: dict[str, str], reason: str
) -> None:
    """Without an engine or image the service refuses to run code, says why, and never hangs."""
    settings = Settings(
        instance=f"closed-{uuid.uuid4().hex[:8]}",
        policies_dir=only_default(policies_dir, tmp_path),
        **override,
    )
    with running_server(settings, wait_ready=False) as url, httpx.Client(base_url=url, timeout=10) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert reason in ready.json()["reason"]
        started = time.monotonic()
        response = client.post("/v1/runs", json={"code": "print(1)"})
        assert response.status_code == 503
        assert response.headers["retry-after"]
        assert reason in response.json()["detail"]
        assert time.monotonic() - started < 5
