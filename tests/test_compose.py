"""docker-compose.yml is valid, needs its secrets, binds loopback only and checks every service's health.

Validated with ``docker compose config`` (or Debian's docker-compose 1.29); nothing is pulled or started.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = {
    "SANDBOXD_IMAGE": "sandboxd-runner:test",
    "SANDBOXD_TOKENS_FILE": "",  # filled with a real file per test
    "GRAFANA_ADMIN_PASSWORD": "correct horse",
}
SERVICES = {"sandboxd", "prometheus", "alertmanager", "grafana"}


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


COMPOSE = _compose_command()
pytestmark = pytest.mark.skipif(
    COMPOSE is None, reason="neither `docker compose` nor docker-compose is installed"
)


def _config(tmp_path: Path, **variables: str | None) -> subprocess.CompletedProcess[str]:
    """``compose config`` with only the given variables set (None: unset), ignoring any .env file."""
    assert COMPOSE is not None
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in REQUIRED and not key.startswith("COMPOSE_")
    }
    env.update({key: value for key, value in variables.items() if value is not None})
    empty = tmp_path / "empty.env"
    empty.write_text("")
    return subprocess.run(
        [*COMPOSE, "--env-file", str(empty), "-f", str(ROOT / "docker-compose.yml"), "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _required(tmp_path: Path) -> dict[str, str | None]:
    tokens = tmp_path / "tokens.jsonl"
    tokens.write_text("")
    return {**REQUIRED, "SANDBOXD_TOKENS_FILE": str(tokens)}


def _rendered(tmp_path: Path) -> dict[str, Any]:
    result = _config(tmp_path, **_required(tmp_path))
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_config_is_valid_with_the_required_variables(tmp_path: Path) -> None:
    """With its required variables set, the file validates and defines the four services."""
    assert set(_rendered(tmp_path)["services"]) == SERVICES


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_a_missing_required_variable_fails_with_its_message(tmp_path: Path, missing: str) -> None:
    """Leaving out any required variable makes ``config`` fail and say which one."""
    result = _config(tmp_path, **{**_required(tmp_path), missing: None})
    assert result.returncode != 0
    assert f"set {missing}" in result.stderr


def test_every_service_has_a_healthcheck(tmp_path: Path) -> None:
    """Each service declares a healthcheck command."""
    for name, service in _rendered(tmp_path)["services"].items():
        assert service.get("healthcheck", {}).get("test"), name


def test_published_ports_bind_loopback_only(tmp_path: Path) -> None:
    """Every published port is bound to 127.0.0.1; nothing listens on the host's other addresses."""
    for name, service in _rendered(tmp_path)["services"].items():
        for port in service.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{name}: {port}"


def test_sandboxd_gets_the_engine_tokens_and_a_safe_bind(tmp_path: Path) -> None:
    """The daemon mounts the engine socket and the tokens file read-only, with authentication on."""
    sandboxd = _rendered(tmp_path)["services"]["sandboxd"]
    volumes = [
        str(volume) if not isinstance(volume, dict) else f"{volume['source']}:{volume['target']}"
        for volume in sandboxd["volumes"]
    ]
    assert any(volume.startswith("/var/run/docker.sock:/var/run/docker.sock") for volume in volumes)
    tokens = [volume for volume in volumes if ":/etc/sandboxd/tokens.jsonl" in volume]
    assert tokens
    assert tokens[0].endswith(":ro")
    environment = sandboxd["environment"]
    assert environment["SANDBOXD_TOKENS_FILE"] == "/etc/sandboxd/tokens.jsonl"
    assert environment["SANDBOXD_ALLOW_PUBLIC_BIND"] == "true"
    assert environment["SANDBOXD_IMAGE"] == REQUIRED["SANDBOXD_IMAGE"]
    assert environment["SANDBOXD_DATA_DIR"] == "/var/lib/sandboxd"  # the ledger outlives the container
    assert any(volume.startswith("sandboxd-data:/var/lib/sandboxd") for volume in volumes)


def test_only_the_daemon_sees_the_engine_socket(tmp_path: Path) -> None:
    """Prometheus, Alertmanager and Grafana have no access to the Docker engine."""
    for name, service in _rendered(tmp_path)["services"].items():
        if name != "sandboxd":
            assert "docker.sock" not in str(service.get("volumes", [])), name


def test_mounted_config_files_exist(tmp_path: Path) -> None:
    """Every bind-mounted path of the monitoring services exists in the checkout, with the provisioning inside."""
    for name in SERVICES - {"sandboxd"}:
        for volume in _rendered(tmp_path)["services"][name]["volumes"]:
            source = str(volume).split(":")[0] if not isinstance(volume, dict) else volume["source"]
            if source.startswith("/"):
                assert Path(source).exists(), f"{name}: {source}"
    assert (ROOT / "deploy/prometheus/prometheus.yml").is_file()
    assert (ROOT / "deploy/alertmanager/alertmanager.yml").is_file()
    assert sorted(path.name for path in (ROOT / "deploy/grafana/dashboards").glob("*.json")) == [
        "overview.json",
        "pool.json",
        "watchdog.json",
    ]


def test_alertmanager_routes_to_a_defined_receiver() -> None:
    """The Alertmanager route and its sub-routes only name receivers that exist."""
    config = yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.yml").read_text())
    receivers = {receiver["name"] for receiver in config["receivers"]}
    routes = [config["route"], *config["route"].get("routes", [])]
    assert {route["receiver"] for route in routes} <= receivers
