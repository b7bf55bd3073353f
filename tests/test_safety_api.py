"""Tripwire tasks, the throttle, admin resume and reload over HTTP (docs/safety.md).

These run the real app (lifespan, auth, ledger) on the in-memory FakeBackend: what is under test is the
wiring around execution, not isolation (tests/test_honeytokens.py does that with real containers).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml
from fastapi import FastAPI
from safety_support import TRIPWIRE_PACKS, WebhookReceiver, make_policies, safety_yaml

from sandboxd.api.app import create_app
from sandboxd.auth.roles import Role
from sandboxd.cli import main
from sandboxd.settings import Settings
from sandboxd.testing import FakeBackend

T = TypeVar("T")
PACK = yaml.safe_load((TRIPWIRE_PACKS / "basic.yaml").read_text())
TASKS = {task["id"]: task["task"] for task in PACK["tasks"]}
SOCKET_ANSWER = "import socket\ndef f(host, port):\n    return socket.create_connection((host, port)) is None"


def answer_to(task_id: str, text: str) -> dict[str, Any]:
    """A check item for tripwire ``task_id``, with the task's fields copied as a trainer would."""
    return {**{k: v for k, v in TASKS[task_id].items() if k != "message"}, "answer": text}


def tokens(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "tokens.jsonl"
    plain = {}
    for role in Role:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["token", "create", "--role", role.value, "--file", str(path)]) == 0
        plain[role.value] = out.getvalue().strip()
    return path, plain


class Caller:
    """An in-process client that picks a role's token per call."""

    def __init__(self, client: httpx.AsyncClient, plain: dict[str, str], app: FastAPI) -> None:
        self.client, self.plain, self.app = client, plain, app

    async def __call__(self, role: str, method: str, url: str, body: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.plain[role]}"}
        return await self.client.request(method, url, json=body, headers=headers)

    @property
    def service(self) -> Any:
        return self.app.state.service


@asynccontextmanager
async def serving(tmp_path: Path, safety: str | None, **settings: Any) -> AsyncIterator[Caller]:
    path, plain = tokens(tmp_path)
    values: dict[str, Any] = {
        "instance": "safety-api-test",
        "image": "fake:latest",
        "policies_dir": make_policies(tmp_path / "policies", safety),
        "data_dir": tmp_path / "data",
        "tokens_file": path,
        **settings,
    }
    app = create_app(Settings(**values), backend=FakeBackend())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandboxd.test") as client:
            yield Caller(client, plain, app)


def run(test: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(test())


async def ledger_kinds(call: Caller) -> list[str]:
    response = await call("auditor", "GET", "/v1/ledger/entries?limit=1000")
    assert response.status_code == 200, response.text
    return [entry["kind"] for entry in response.json()["entries"]]


def tripwire_count(text: str, rule: str) -> float:
    found = re.search(rf'^sandboxd_tripwire_events_total\{{rule="{re.escape(rule)}"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_sample_returns_tasks_without_their_detection(tmp_path: Path) -> None:
    """Sampled tasks are in AZR's format with an opaque ref; ids, descriptions and detection stay server-side."""

    async def scenario() -> None:
        async with serving(tmp_path, safety_yaml()) as call:
            response = await call("trainer", "GET", "/v1/tripwires/sample?n=12")
            assert response.status_code == 200, response.text
            tasks = response.json()["tasks"]
            assert len(tasks) == 12
            for task in tasks:
                assert re.fullmatch(r"tw_[0-9a-f]{20}", task["ref"])
                assert task["task_type"] in {"induction", "abduction", "deduction"}
                assert not {"id", "description", "detect", "severity"} & set(task)
                assert "tripwire" not in str(task).lower()
            too_many = await call("trainer", "GET", "/v1/tripwires/sample?n=65")
            assert too_many.status_code == 422
            assert "max_sample" in too_many.json()["detail"]

    run(scenario)


def test_tripwire_pauses_until_an_admin_resumes(tmp_path: Path) -> None:
    """An attempted tripwire task is recorded, counted, sent to the webhook and pauses trainer endpoints
    with 503 + Retry-After; only an admin resume with a reason lifts it, and every step is in the ledger."""

    async def scenario(hook: WebhookReceiver) -> None:
        async with serving(tmp_path, safety_yaml(), tripwire_webhook_url=hook.url) as call:
            assert (await call("trainer", "POST", "/v1/runs", {"code": "print(1)"})).status_code == 200
            checked = await call(
                "trainer",
                "POST",
                "/v1/azr/check",
                {"answers": [answer_to("tripwire.open-socket", SOCKET_ANSWER)]},
            )
            assert checked.status_code == 200, checked.text
            refused = await call("trainer", "POST", "/v1/runs", {"code": "print(1)"})
            assert refused.status_code == 503
            assert refused.json()["error"] == "throttled"
            assert "tripwire.open-socket" in refused.json()["detail"]
            assert refused.headers["retry-after"] == "60"
            fusion = await call("trainer", "POST", "/run_code", {"code": "print(1)", "language": "python"})
            assert fusion.status_code == 503
            state = (await call("auditor", "GET", "/v1/watchdog/state")).json()
            assert state["band"] == "paused"
            assert state["recent_tripwires"][-1]["rule"] == "tripwire.open-socket"
            assert state["recent_tripwires"][-1]["how"] == "attempted"
            assert state["history"][-1]["by"] == "tripwire"
            metrics = (await call("auditor", "GET", "/metrics")).text
            assert tripwire_count(metrics, "tripwire.open-socket") == 1.0
            assert "sandboxd_throttle_band 2.0" in metrics
            for role in ("trainer", "auditor"):
                body = {"reason": "the solver is retrained"}
                assert (await call(role, "POST", "/v1/admin/resume", body)).status_code == 403
            assert (await call("admin", "POST", "/v1/admin/resume", {"reason": "ok"})).status_code == 422
            assert (await call("trainer", "POST", "/v1/runs", {"code": "print(1)"})).status_code == 503
            lifted = await call(
                "admin", "POST", "/v1/admin/resume", {"reason": "reviewed: a probe, not the model"}
            )
            assert lifted.status_code == 200, lifted.text
            assert lifted.json()["band"] == "normal"
            assert lifted.json()["history"][-1]["by"].startswith("token:")
            assert (await call("trainer", "POST", "/v1/runs", {"code": "print(1)"})).status_code == 200
            kinds = await ledger_kinds(call)
            assert kinds.count("tripwire") == 1
            assert kinds.count("throttle_change") == 2
            assert kinds.count("admin_action") == 1
            again = await call("admin", "POST", "/v1/admin/resume", {"reason": "nothing is paused now"})
            assert again.status_code == 409
        events = hook.wait_for(1)
        assert [e["rule"] for e in events] == ["tripwire.open-socket"]
        assert events[0]["kind"] == "task"

    receiver = WebhookReceiver()
    with receiver.running():
        run(lambda: scenario(receiver))


@pytest.mark.parametrize(
    ("task_id", "text", "fires"),
    [
        pytest.param("tripwire.open-socket", SOCKET_ANSWER, True, id="socket-attempt"),
        pytest.param(
            "tripwire.open-socket", "def f(host, port):\n    return False", False, id="socket-declined"
        ),
        pytest.param(
            "tripwire.escape-sandbox", "import ctypes\ndef f(p):\n    return True", True, id="escape-ctypes"
        ),
        pytest.param(
            "tripwire.read-credentials", "def f(p):\n    return bool(open(p).read())", True, id="open-file"
        ),
        pytest.param("tripwire.hash-preimage", "'hello'", False, id="wrong-preimage"),
    ],
)
def test_tripwire_answers_by_content(tmp_path: Path, task_id: str, text: str, fires: bool) -> None:
    """An answer to a tripwire task fires when it attempts the forbidden thing, not when it declines."""

    async def scenario() -> None:
        async with serving(tmp_path, safety_yaml()) as call:
            response = await call("trainer", "POST", "/v1/azr/check", {"answers": [answer_to(task_id, text)]})
            assert response.status_code == 200, response.text
            state = (await call("auditor", "GET", "/v1/watchdog/state")).json()
            assert (state["band"] == "paused") is fires
            assert [e["rule"] for e in state["recent_tripwires"]] == ([task_id] if fires else [])

    run(scenario)


def test_ordinary_answers_are_not_tripwires(tmp_path: Path) -> None:
    """A socket-using answer to an ordinary task is judged as usual and fires nothing."""

    async def scenario() -> None:
        async with serving(tmp_path, safety_yaml()) as call:
            item = {"task_type": "induction", "answer": SOCKET_ANSWER, "inputs": ["1, 2"], "outputs": ["3"]}
            assert (await call("trainer", "POST", "/v1/azr/check", {"answers": [item]})).status_code == 200
            assert (await call("auditor", "GET", "/v1/watchdog/state")).json()["band"] == "normal"

    run(scenario)


def test_stale_score_fails_closed(tmp_path: Path) -> None:
    """When the evaluation loop stops, trainer requests get 503 once the score is stale."""

    async def scenario() -> None:
        async with serving(tmp_path, safety_yaml()) as call:
            sentinel = call.service.sentinel
            sentinel._loop.cancel()
            sentinel.throttle.evaluated_at -= 60
            refused = await call("trainer", "POST", "/v1/runs", {"code": "print(1)"})
            assert refused.status_code == 503
            assert "stale" in refused.json()["detail"]
            assert (await call("auditor", "GET", "/v1/watchdog/state")).json()["stale"]

    run(scenario)


def test_slow_band_rate_limits(tmp_path: Path) -> None:
    """In the slow band requests beyond the bucket wait, and past max_wait_seconds they get 503."""

    async def scenario() -> None:
        rates = {"normal": None, "slow": 0.5, "burst": 1, "max_wait_seconds": 0.1}
        async with serving(tmp_path, safety_yaml(rates=rates)) as call:
            throttle = call.service.sentinel.throttle
            throttle._move(throttle.band.__class__("slow"), "test", "score")
            assert (await call("trainer", "POST", "/v1/runs", {"code": "1"})).status_code == 200
            refused = await call("trainer", "POST", "/v1/runs", {"code": "1"})
            assert refused.status_code == 503
            assert "admission rate" in refused.json()["detail"]

    run(scenario)


def test_without_safety_file_everything_is_off(tmp_path: Path) -> None:
    """No safety file: no throttle, no tripwire tasks (422), and the state says so."""

    async def scenario() -> None:
        async with serving(tmp_path, None) as call:
            state = (await call("auditor", "GET", "/v1/watchdog/state")).json()
            off = {"enabled": False, "honeytokens": False, "tripwire_tasks": 0, "recent_tripwires": []}
            assert {key: state[key] for key in off} == off
            assert state["band"] is None
            assert state["score"] is None
            assert (await call("trainer", "GET", "/v1/tripwires/sample")).status_code == 422
            assert (
                await call("admin", "POST", "/v1/admin/resume", {"reason": "nothing to do"})
            ).status_code == 409

    run(scenario)


def test_run_code_is_screened(tmp_path: Path) -> None:
    """/run_code applies the default policy's static watchdog: a veto never reaches a sandbox."""

    async def scenario() -> None:
        async with serving(tmp_path, None, default_policy="watchdogged") as call:
            body = {"code": "import socket\nprint(1)", "language": "python"}
            response = await call("trainer", "POST", "/run_code", body)
            assert response.status_code == 200, response.text
            answer = response.json()
            assert (answer["status"], answer["sandboxd_status"]) == ("Failed", "vetoed")
            assert "capability.import" in answer["message"]
            assert answer["run_result"]["return_code"] == 1
            backend = call.app.state.service.backend
            assert not [m for m in backend.received if m["op"] == "run"]
            ok = await call("trainer", "POST", "/run_code", {"code": "print(1)", "language": "python"})
            assert ok.json()["status"] == "Success"

    run(scenario)


ADDED = "schema_version: 1\nkind: sandbox\nname: added\nextends: default\ndescription: Added at run time.\n"
LOOSER = (
    "schema_version: 1\nkind: sandbox\nname: watchdogged\nextends: default\n"
    "description: Only size caps now.\nwatchdog:\n  enabled: true\n  packs: [size-caps]\n"
)


def test_reload_applies_valid_policies_and_records_the_diff(tmp_path: Path) -> None:
    """A valid reload swaps policies and packs, reports digests and loosening changes, and is recorded."""

    async def scenario() -> None:
        async with serving(tmp_path, safety_yaml()) as call:
            policies = call.service.settings.policies_dir
            (policies / "added.yaml").write_text(ADDED)
            (policies / "watchdogged.yaml").write_text(LOOSER)
            response = await call("admin", "POST", "/v1/admin/policies/reload", {"reason": "new policy"})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["old_digest"] != body["new_digest"]
            assert body["changes"]["policies_added"] == ["added"]
            assert body["changes"]["policies_changed"] == ["watchdogged"]
            assert any("capabilities" in line for line in body["changes"]["loosening"])
            assert "added" in call.service.policies
            assert "added" in call.service.pools
            run_ok = await call(
                "trainer", "POST", "/v1/runs", {"code": "import socket", "policy": "watchdogged"}
            )
            assert run_ok.json()["status"] == "ok"  # the looser packs are in force
            assert (await ledger_kinds(call)).count("policy_change") == 1

    run(scenario)


@pytest.mark.parametrize(
    ("file", "text", "message"),
    [
        pytest.param(
            "broken.yaml", "schema_version: 1\nkind: sandbox\nname: broken\n", "description", id="bad-policy"
        ),
        pytest.param("safety/config.yaml", safety_yaml(margin=0.9), "margin", id="bad-safety-file"),
        pytest.param(
            "safety/config.yaml",
            safety_yaml(enabled=False),
            "needs a restart",
            id="throttle-off-needs-restart",
        ),
    ],
)
def test_invalid_reload_changes_nothing(tmp_path: Path, file: str, text: str, message: str) -> None:
    """An invalid reload is a 422 naming the problem; the running policies and band stay as they were."""

    async def scenario() -> None:
        async with serving(tmp_path, safety_yaml()) as call:
            service = call.service
            before = (dict(service.policies), service.sentinel.config)
            await service.sentinel.fire("test.rule", {"how": "attempted"})
            (service.settings.policies_dir / file).write_text(text)
            response = await call("admin", "POST", "/v1/admin/policies/reload", {})
            assert response.status_code == 422, response.text
            assert response.json()["error"] == "invalid_policy"
            assert message in response.json()["detail"]
            assert (dict(service.policies), service.sentinel.config) == before
            assert service.sentinel.throttle.band.value == "paused"
            assert "policy_change" not in await ledger_kinds(call)

    run(scenario)


def test_reload_never_lifts_a_pause(tmp_path: Path) -> None:
    """A valid reload keeps the band: paused stays paused."""

    async def scenario() -> None:
        async with serving(tmp_path, safety_yaml()) as call:
            service = call.service
            await service.sentinel.fire("test.rule", {"how": "attempted"})
            (service.settings.policies_dir / "safety" / "config.yaml").write_text(safety_yaml(margin=0.1))
            assert (await call("admin", "POST", "/v1/admin/policies/reload", {})).status_code == 200
            assert service.sentinel.throttle.config.margin == 0.1
            assert (await call("trainer", "POST", "/v1/runs", {"code": "1"})).status_code == 503

    run(scenario)


def test_a_restart_does_not_lift_a_pause(tmp_path: Path) -> None:
    """A daemon restarted on the same data_dir comes back paused; only a resume lifts it."""

    async def scenario() -> None:
        async with serving(tmp_path, safety_yaml()) as call:
            await call.service.sentinel.fire("test.rule", {"how": "attempted"})
        async with serving(tmp_path, safety_yaml()) as call:
            refused = await call("trainer", "POST", "/v1/runs", {"code": "1"})
            assert refused.status_code == 503
            assert "test.rule" in refused.json()["detail"]
            resumed = await call("admin", "POST", "/v1/admin/resume", {"reason": "reviewed after restart"})
            assert resumed.status_code == 200
        async with serving(tmp_path, safety_yaml()) as call:
            assert (await call("trainer", "POST", "/v1/runs", {"code": "1"})).status_code == 200

    run(scenario)
