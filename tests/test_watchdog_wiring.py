"""The static watchdog in the request path: opt-in per sandbox policy, veto before any container."""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from safety_support import WATCHDOGGED

from sandboxd.api.app import create_app
from sandboxd.exceptions import ConfigurationError
from sandboxd.policy import SandboxPolicy, WatchdogOptions
from sandboxd.settings import BUILTIN_POLICIES, Settings
from sandboxd.testing import FakeBackend, running_server

IMPORTS_OS = "import os\ndef f(x):\n    return x + 1"
BENIGN = "def f(x):\n    return x + 1"
LYING_EQ = "class A:\n    def __eq__(self, other):\n        return True\ndef f(x):\n    return A()"
SOCKET = "import socket\nprint('hi')"


def make_policies(directory: Path, extra: str = WATCHDOGGED) -> Path:
    """The built-in sandbox policies plus ``watchdogged.yaml``."""
    directory.mkdir(parents=True, exist_ok=True)
    for source in BUILTIN_POLICIES.glob("*.yaml"):
        shutil.copy(source, directory / source.name)
    (directory / "watchdogged.yaml").write_text(extra, encoding="utf-8")
    return directory


def task(program: str, task_type: str = "deduction") -> dict[str, Any]:
    return {"task_type": task_type, "program": program, "inputs": ["1"]}


def induction(answer: str) -> dict[str, Any]:
    return {"task_type": "induction", "answer": answer, "inputs": ["1"], "outputs": ["2"]}


def metric(text: str, decision: str, rule: str) -> float:
    """The value of ``sandboxd_watchdog_decisions_total{decision,rule}`` (0 when absent)."""
    pattern = (
        rf'^sandboxd_watchdog_decisions_total\{{decision="{decision}",rule="{re.escape(rule)}"\}} (\S+)$'
    )
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


# Without Docker: configuration, and vetoes that must never need a sandbox.


def test_watchdog_is_off_by_default() -> None:
    """A policy without a watchdog block has the watchdog off, with no packs chosen."""
    policy = SandboxPolicy(schema_version=1, name="p", description="d", syscalls=("read",))
    assert policy.watchdog == WatchdogOptions()
    assert policy.watchdog.enabled is False
    assert policy.watchdog.packs == ()


def test_invalid_packs_fail_startup(tmp_path: Path) -> None:
    """An enabled watchdog whose packs directory holds an invalid pack refuses to start."""
    packs = tmp_path / "packs"
    packs.mkdir()
    (packs / "bad.yaml").write_text("schema_version: 1\nkind: watchdog\nname: bad\n", encoding="utf-8")
    policies = make_policies(tmp_path / "policies", WATCHDOGGED + f"  packs_dir: {packs}\n")
    with pytest.raises(ConfigurationError, match=r"policy watchdogged: invalid watchdog packs"):
        create_app(
            Settings(instance="wd-bad", policies_dir=policies, warm_pools=False), backend=FakeBackend()
        )


def test_unknown_pack_name_fails_startup(tmp_path: Path) -> None:
    """Naming a pack that the packs directory does not hold refuses to start."""
    policies = make_policies(tmp_path / "policies", WATCHDOGGED + "  packs: [capabilities, nope]\n")
    with pytest.raises(ConfigurationError, match=r"unknown watchdog packs \['nope'\]"):
        create_app(
            Settings(instance="wd-nope", policies_dir=policies, warm_pools=False), backend=FakeBackend()
        )


@pytest.fixture
def offline(tmp_path: Path) -> FastAPI:
    """An app on a fake backend whose lifespan never runs: any sandbox use fails with 503."""
    policies = make_policies(tmp_path / "policies")
    settings = Settings(instance="wd-offline", policies_dir=policies, warm_pools=False)
    return create_app(settings, backend=FakeBackend())


def call(app: FastAPI, url: str, body: dict[str, Any]) -> httpx.Response:
    """One in-process POST through httpx's ASGI transport (no sockets, no lifespan)."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandboxd.test") as http:
            return await http.post(url, json=body)

    return asyncio.run(send())


def test_vetoed_items_never_need_a_sandbox(offline: FastAPI) -> None:
    """Vetoed validate, check and run items are answered while isolation is unavailable."""
    validated = call(offline, "/v1/azr/validate", {"policy": "watchdogged", "tasks": [task(IMPORTS_OS)]})
    assert validated.status_code == 200, validated.text
    assert validated.json()["results"][0]["reason"] == "vetoed"
    checked = call(offline, "/v1/azr/check", {"policy": "watchdogged", "answers": [induction(LYING_EQ)]})
    assert checked.status_code == 200, checked.text
    assert checked.json()["results"][0]["reason"] == "vetoed"
    ran = call(offline, "/v1/runs", {"policy": "watchdogged", "code": SOCKET})
    assert ran.status_code == 200, ran.text
    assert ran.json()["status"] == "vetoed"
    benign = call(offline, "/v1/runs", {"policy": "watchdogged", "code": "print(1)"})
    assert benign.status_code == 503  # an allowed run does need a sandbox


def test_proposer_may_define_comparison_methods(offline: FastAPI) -> None:
    """The solver-only verifier-hacking rules do not veto a proposed task (it reaches the sandbox: 503)."""
    response = call(offline, "/v1/azr/validate", {"policy": "watchdogged", "tasks": [task(LYING_EQ)]})
    assert response.status_code == 503


# With Docker: a real server.


@pytest.fixture(scope="module")
def wd_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A real sandboxd whose ``watchdogged`` policy turns the watchdog on."""
    policies = make_policies(tmp_path_factory.mktemp("wd") / "policies")
    settings = Settings(instance=f"test-wd-{uuid.uuid4().hex[:8]}", policies_dir=policies)
    with running_server(settings) as url, httpx.Client(base_url=url, timeout=120.0) as http:
        yield http


@pytest.mark.docker
def test_validate_vetoes_capability_import(wd_client: httpx.Client) -> None:
    """A proposed task importing os is vetoed by capability.import and never runs."""
    response = wd_client.post("/v1/azr/validate", json={"policy": "watchdogged", "tasks": [task(IMPORTS_OS)]})
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert result["valid"] is False
    assert result["reason"] == "vetoed"
    assert result["outputs"] == [None]
    assert result["usage"]["wall_time_seconds"] == 0.0
    assert result["watchdog"]["decision"] == "veto"
    assert "capability.import" in {f["rule_id"] for f in result["watchdog"]["findings"]}


@pytest.mark.docker
def test_validate_allows_benign_task(wd_client: httpx.Client) -> None:
    """A benign task is valid and carries the watchdog's allow decision."""
    response = wd_client.post("/v1/azr/validate", json={"policy": "watchdogged", "tasks": [task(BENIGN)]})
    [result] = response.json()["results"]
    assert result["valid"] is True, result
    assert result["outputs"] == ["2"]
    assert result["watchdog"] == {"decision": "allow", "findings": []}


@pytest.mark.docker
def test_check_vetoes_comparison_override(wd_client: httpx.Client) -> None:
    """An induction answer defining __eq__ is vetoed for the solver (hacking.comparison-override)."""
    body = {"policy": "watchdogged", "answers": [induction(LYING_EQ), induction(BENIGN)]}
    response = wd_client.post("/v1/azr/check", json=body)
    assert response.status_code == 200, response.text
    vetoed, benign = response.json()["results"]
    assert (vetoed["correct"], vetoed["reward"], vetoed["reason"]) == (False, 0.0, "vetoed")
    assert vetoed["usage"]["wall_time_seconds"] == 0.0
    assert "hacking.comparison-override" in {f["rule_id"] for f in vetoed["watchdog"]["findings"]}
    assert (benign["correct"], benign["reward"], benign["reason"]) == (True, 1.0, "ok")
    assert benign["watchdog"]["decision"] == "allow"


@pytest.mark.docker
def test_runs_veto_socket_and_keep_batch_order(wd_client: httpx.Client) -> None:
    """A run importing socket is vetoed (no sandbox); in a batch the others still run, in order."""
    single = wd_client.post("/v1/runs", json={"policy": "watchdogged", "code": SOCKET}).json()
    assert single["status"] == "vetoed"
    assert single["sandbox_id"] == ""
    assert single["wall_time_seconds"] == 0.0
    assert single["watchdog"]["decision"] == "veto"
    runs = [{"code": "print(1)"}, {"code": SOCKET}, {"code": "print(3)"}]
    batch = wd_client.post("/v1/runs/batch", json={"policy": "watchdogged", "runs": runs}).json()
    assert [r["status"] for r in batch["results"]] == ["ok", "vetoed", "ok"]
    assert [r["stdout"] for r in batch["results"]] == ["1\n", "", "3\n"]


@pytest.mark.docker
def test_decisions_metric_counts_rules(wd_client: httpx.Client) -> None:
    """sandboxd_watchdog_decisions_total counts vetoes by rule and allows as rule="none"."""
    before = wd_client.get("/metrics").text
    wd_client.post("/v1/runs", json={"policy": "watchdogged", "code": SOCKET})
    wd_client.post("/v1/runs", json={"policy": "watchdogged", "code": "print(1)"})
    after = wd_client.get("/metrics").text
    assert metric(after, "veto", "capability.import") == metric(before, "veto", "capability.import") + 1
    assert metric(after, "allow", "none") == metric(before, "allow", "none") + 1


@pytest.mark.docker
def test_default_policy_leaves_watchdog_off(wd_client: httpx.Client) -> None:
    """Under the default policy the same requests are not vetoed and carry watchdog: null."""
    before = wd_client.get("/metrics").text
    validated = wd_client.post("/v1/azr/validate", json={"tasks": [task(IMPORTS_OS)]}).json()
    [result] = validated["results"]
    assert result["reason"] != "vetoed"
    assert result["watchdog"] is None
    ran = wd_client.post("/v1/runs", json={"code": SOCKET}).json()
    assert ran["status"] != "vetoed"
    assert ran["watchdog"] is None
    checked = wd_client.post("/v1/azr/check", json={"answers": [induction(BENIGN)]}).json()
    assert checked["results"][0]["watchdog"] is None
    assert metric(wd_client.get("/metrics").text, "veto", "capability.import") == metric(
        before, "veto", "capability.import"
    )
