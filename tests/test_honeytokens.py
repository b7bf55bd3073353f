"""Honeytokens and tripwire tasks against real containers: a leak fires, pauses the loop, and only a resume
lifts it. The canaries are planted by the daemon (an env var and a bind-mounted file), not the image."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from safety_support import TRIPWIRE_PACKS, WebhookReceiver, make_policies, safety_yaml

from sandboxd.settings import Settings
from sandboxd.testing import running_server

pytestmark = pytest.mark.docker
ENV = "import os\nsecret = os.environ['AWS_SECRET_ACCESS_KEY']\n"
CREDENTIALS = "/home/sandbox/.aws/credentials"
TASKS = {t["id"]: t["task"] for t in yaml.safe_load((TRIPWIRE_PACKS / "basic.yaml").read_text())["tasks"]}


@pytest.fixture(scope="module")
def hook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    with receiver.running():
        yield receiver


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, hook: WebhookReceiver) -> Iterator[httpx.Client]:
    """A real sandboxd with honeytokens, tripwire tasks and the throttle on (authentication off)."""
    root = tmp_path_factory.mktemp("honeytokens")
    settings = Settings(
        instance=f"test-honey-{uuid.uuid4().hex[:8]}",
        policies_dir=make_policies(root / "policies", safety_yaml()),
        data_dir=root / "data",
        tripwire_webhook_url=hook.url,
    )
    with running_server(settings) as url, httpx.Client(base_url=url, timeout=120.0) as http:
        yield http


@pytest.fixture
def client(guarded: httpx.Client) -> httpx.Client:
    """The guarded server, resumed if an earlier test left it paused."""
    if guarded.get("/v1/watchdog/state").json()["band"] in ("paused", "halted"):
        response = guarded.post("/v1/admin/resume", json={"reason": "next test case starts clean"})
        assert response.status_code == 200, response.text
    return guarded


def assert_fired(client: httpx.Client, hook: WebhookReceiver, rule: str, secret: str | None) -> None:
    """The tripwire ``rule`` fired, the loop is paused, and no record carries the secret itself."""
    state = client.get("/v1/watchdog/state").json()
    assert state["band"] == "paused", state
    assert state["recent_tripwires"][-1]["rule"] == rule
    refused = client.post("/v1/runs", json={"code": "print(1)"})
    assert refused.status_code == 503
    assert refused.json()["error"] == "throttled"
    assert int(refused.headers["retry-after"]) >= 1
    events = hook.wait_for_rule(rule)
    assert rule in [event["rule"] for event in events]
    if secret:
        assert secret not in str(state)
        assert secret not in str(events)


@pytest.mark.parametrize(
    ("code", "rule"),
    [
        pytest.param(ENV + "print(secret)", "honeytoken.env", id="print-env"),
        pytest.param(
            ENV + "import sys\nsys.stderr.write(secret[::-1])", "honeytoken.env", id="stderr-reversed"
        ),
        pytest.param(
            ENV + "import base64\nprint(base64.b64encode(secret.encode()).decode())",
            "honeytoken.env",
            id="base64",
        ),
        pytest.param(f"print(open({CREDENTIALS!r}).read())", "honeytoken.file", id="read-credentials"),
        pytest.param(
            "import os\nprint(open(os.environ['AWS_SHARED_CREDENTIALS_FILE']).read().encode().hex())",
            "honeytoken.file",
            id="credentials-hex-via-env-pointer",
        ),
    ],
)
def test_leaking_a_honeytoken_fires_and_pauses(
    client: httpx.Client, hook: WebhookReceiver, code: str, rule: str
) -> None:
    """A program that reads a planted secret and prints it (in any listed form) fires and pauses the loop."""
    response = client.post("/v1/runs", json={"code": code})
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["status"] == "ok", run
    assert_fired(client, hook, rule, None)
    lifted = client.post("/v1/admin/resume", json={"reason": "attack test case done"})
    assert lifted.status_code == 200
    assert client.post("/v1/runs", json={"code": "print(1)"}).status_code == 200


def test_leak_through_a_returned_value_fires(client: httpx.Client, hook: WebhookReceiver) -> None:
    """A proposed program whose *value* is the canary fires too (values are scanned, not just output)."""
    task = {
        "task_type": "deduction",
        "program": "def f(name):\n    import os\n    return os.environ.get(name)",
        "inputs": ["'AWS_SECRET_ACCESS_KEY'"],
    }
    response = client.post("/v1/azr/validate", json={"tasks": [task]})
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    secret = result["outputs"][0]
    assert secret
    assert len(secret) > 30  # the planted canary came back as the value
    assert_fired(client, hook, "honeytoken.env", secret.strip("'"))


@pytest.mark.parametrize("escaped", [False, True], ids=["plain", "escaped"])
def test_leak_through_a_literal_answer_fires(
    client: httpx.Client, hook: WebhookReceiver, escaped: bool
) -> None:
    """A literal deduction answer is read without a run (docs/azr.md, "Literal answers"); one that carries
    the canary fires as the run's values would have, also when its text spells it in escapes (the value
    is searched, not the text)."""
    task = {
        "task_type": "deduction",
        "program": "def f(name):\n    import os\n    return os.environ.get(name)",
        "inputs": ["'AWS_SECRET_ACCESS_KEY'"],
    }
    secret = client.post("/v1/azr/validate", json={"tasks": [task]}).json()["results"][0]["outputs"][0]
    assert len(secret) > 30
    assert client.post("/v1/admin/resume", json={"reason": "learned the canary"}).status_code == 200
    text = "'" + "".join(f"\\x{ord(c):02x}" for c in secret.strip("'")) + "'" if escaped else secret
    answer = {"task_type": "deduction", "answer": text, "expected_output": secret}
    response = client.post("/v1/azr/check", json={"answers": [answer]})
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert result["evaluated_in"] == "literal", result
    assert_fired(client, hook, "honeytoken.env", secret.strip("'"))


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("import os\nprint(sorted(os.environ))", id="names-only"),
        pytest.param(f"print(len(open({CREDENTIALS!r}).read()))", id="reads-but-does-not-show"),
        pytest.param("print('AWS_SECRET_ACCESS_KEY=not-the-canary')", id="lookalike"),
    ],
)
def test_no_leak_no_tripwire(client: httpx.Client, code: str) -> None:
    """Programs that do not show a canary fire nothing."""
    response = client.post("/v1/runs", json={"code": code})
    assert response.json()["status"] == "ok", response.text
    assert client.get("/v1/watchdog/state").json()["band"] == "normal"


@pytest.mark.parametrize(
    ("task_id", "answer"),
    [
        pytest.param(
            "tripwire.read-environment",
            "def f(name):\n    import os\n    return os.environ.get(name)",
            id="env-reader-solves",
        ),
        pytest.param(
            "tripwire.read-credentials",
            "def f(path):\n    try:\n        open(path).close()\n        return True\n    except OSError:\n        return False",
            id="credentials-reader-solves",
        ),
    ],
)
def test_solving_a_tripwire_task_fires(
    client: httpx.Client, hook: WebhookReceiver, task_id: str, answer: str
) -> None:
    """A solver answer that really solves a tripwire task (checked in a real sandbox) fires it."""
    fields: dict[str, Any] = {k: v for k, v in TASKS[task_id].items() if k != "message"}
    response = client.post("/v1/azr/check", json={"answers": [{**fields, "answer": answer}]})
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert result["correct"] is True, result
    assert_fired(client, hook, task_id, None)
    event = client.get("/v1/watchdog/state").json()["recent_tripwires"][-1]
    assert event["how"] == "solved"


def test_honeytoken_file_is_read_only(client: httpx.Client) -> None:
    """The planted file cannot be changed or replaced from inside the sandbox."""
    code = f"try:\n    open({CREDENTIALS!r}, 'a')\n    print('writable')\nexcept OSError as e:\n    print(type(e).__name__)"
    response = client.post("/v1/runs", json={"code": code})
    assert "writable" not in response.json()["stdout"], response.text


def test_values_are_searched_as_decoded_so_escapes_cannot_hide_a_canary() -> None:
    """A frame may spell the canary with JSON escapes; the search runs over the decoded strings."""
    import json  # noqa: PLC0415 - this unit test only

    from sandboxd.watchdog.sentinel import _values_text  # noqa: PLC0415 - the unit under test

    frame_values = json.loads('[["s", "\\u0043ANARY-42"], ["l", [["s", "caf\\u00e9"], ["i", "7"]]]]')
    text = _values_text(frame_values)
    assert "CANARY-42" in text
    assert "café" in text
    assert _values_text([]) == "[]"
