"""The SandboxFusion-compatible ``/run_code``: verl's exact request shape, status mapping and errors."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from sandboxd.api.app import create_app
from sandboxd.api.fusion import fusion_limits, to_fusion
from sandboxd.api.fusion_schemas import RunCodeRequest
from sandboxd.exceptions import PoolExhausted
from sandboxd.policy import load_policies
from sandboxd.run import RunResult
from sandboxd.settings import BUILTIN_POLICIES, Settings
from sandboxd.testing import FakeBackend
from sandboxd.verdict import Status

docker = pytest.mark.docker
RESPONSE_KEYS = {
    "status",
    "message",
    "compile_result",
    "run_result",
    "executor_pod_name",
    "files",
    "sandboxd_status",
}
RUN_RESULT_KEYS = {"status", "execution_time", "return_code", "stdout", "stderr"}
# verl/utils/reward_score/sandbox_fusion/utils.py posts a pre-serialized body with these headers.
VERL_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


def verl_body(
    code: str, stdin: str = "", *, timeout: float = 10, memory_limit_mb: int = 1024, language: str = "python"
) -> str:
    """The request body verl's call_sandbox_api sends, field for field."""
    return json.dumps(
        {
            "compile_timeout": timeout,
            "run_timeout": timeout,
            "code": code,
            "stdin": stdin,
            "memory_limit_MB": memory_limit_mb,
            "language": language,
            "files": {},
            "fetch_files": [],
        }
    )


def verl_post(client: httpx.Client, code: str, stdin: str = "", **options: Any) -> httpx.Response:
    """POST /run_code the way verl does: a pre-serialized JSON body with JSON headers."""
    return client.post("/run_code", content=verl_body(code, stdin, **options), headers=VERL_HEADERS)


@docker
def test_passing_program_is_success(client: httpx.Client) -> None:
    """A program that reads its input and prints the answer is Success / Finished / return code 0."""
    response = verl_post(client, "a, b = map(int, input().split())\nprint(a + b)", "2 3\n")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "Success"
    assert body["compile_result"] is None
    assert body["run_result"]["status"] == "Finished"
    assert body["run_result"]["return_code"] == 0
    assert body["run_result"]["stdout"] == "5\n"
    assert body["sandboxd_status"] == "ok"
    assert 0 < body["run_result"]["execution_time"] < 10


@docker
def test_failing_assertion_is_failed_with_nonzero_code(client: httpx.Client) -> None:
    """A failed assert is Failed / Finished with return code 1, which verl scores as a runtime error."""
    body = verl_post(client, "print('partial')\nassert 1 + 1 == 3, 'wrong'").json()
    assert body["status"] == "Failed"
    assert body["compile_result"] is None
    assert body["run_result"]["status"] == "Finished"
    assert body["run_result"]["return_code"] == 1
    assert body["run_result"]["stdout"] == "partial\n"
    assert "AssertionError: wrong" in body["run_result"]["stderr"]
    assert body["sandboxd_status"] == "runtime_error"


@docker
def test_timeout_is_time_limit_exceeded(client: httpx.Client) -> None:
    """A program that outlives run_timeout is Failed / TimeLimitExceeded with a null return code."""
    body = verl_post(client, "while True:\n    pass", timeout=1).json()
    assert body["status"] == "Failed"
    assert body["run_result"]["status"] == "TimeLimitExceeded"
    assert body["run_result"]["return_code"] is None
    assert body["sandboxd_status"] == "timeout"


@docker
def test_stdin_is_echoed(client: httpx.Client) -> None:
    """The stdin string verl sends is exactly what the program reads."""
    stdin = "3\nhéllo wörld\n[1, 2]\n"
    body = verl_post(client, "import sys\nsys.stdout.write(sys.stdin.read())", stdin).json()
    assert body["status"] == "Success"
    assert body["run_result"]["stdout"] == stdin


@docker
def test_memory_limit_is_failed_finished(client: httpx.Client) -> None:
    """A program over memory_limit_MB is Failed / Finished with a non-zero code; the verdict rides along."""
    body = verl_post(client, "x = bytearray(512 * 1024 * 1024)", memory_limit_mb=64).json()
    assert body["status"] == "Failed"
    assert body["run_result"]["status"] == "Finished"
    assert body["run_result"]["return_code"] != 0
    assert body["sandboxd_status"] == "memory_limit"


@docker
def test_python3_is_an_alias(client: httpx.Client) -> None:
    """language "python3" runs the program like "python"."""
    body = verl_post(client, "print('hi')", language="python3").json()
    assert body["status"] == "Success"
    assert body["run_result"]["stdout"] == "hi\n"


@docker
def test_unsupported_language_is_sandbox_error(client: httpx.Client) -> None:
    """A SandboxFusion language sandboxd cannot run is a 200 SandboxError that says what runs."""
    response = verl_post(client, "int main() { return 0; }", language="cpp")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "SandboxError"
    assert "python" in body["message"]
    assert body["run_result"] is None
    assert body["compile_result"] is None


@docker
def test_all_fields_present_with_nulls(client: httpx.Client) -> None:
    """Every response field is in the JSON, nulls included, as SandboxFusion clients expect."""
    success = verl_post(client, "pass").json()
    assert set(success) == RESPONSE_KEYS
    assert set(success["run_result"]) == RUN_RESULT_KEYS
    assert success["compile_result"] is None
    assert success["files"] == {}
    assert success["executor_pod_name"]
    timeout = verl_post(client, "while True: pass", timeout=0.5).json()
    assert set(timeout["run_result"]) == RUN_RESULT_KEYS
    assert timeout["run_result"]["return_code"] is None
    refused = verl_post(client, "", language="bash").json()
    assert set(refused) == RESPONSE_KEYS
    assert refused["run_result"] is None
    assert refused["executor_pod_name"] is None
    assert refused["sandboxd_status"] is None


@docker
def test_unknown_fields_are_ignored(client: httpx.Client) -> None:
    """Fields sandboxd does not know are ignored, as SandboxFusion's pydantic models ignore them."""
    response = client.post(
        "/run_code", json={"code": "print(1)", "language": "python", "args": ["-x"], "future_field": 1}
    )
    assert response.status_code == 200
    assert response.json()["status"] == "Success"


@docker
def test_input_files_are_refused(client: httpx.Client) -> None:
    """Input files are a SandboxError naming the feature; nothing is run."""
    content = base64.b64encode(b"data").decode()
    body = client.post(
        "/run_code", json={"code": "print(1)", "language": "python", "files": {"a.txt": content}}
    ).json()
    assert body["status"] == "SandboxError"
    assert "files is not supported" in body["message"]
    assert body["run_result"] is None


@docker
def test_fetch_files_returns_empty_dict_with_note(client: httpx.Client) -> None:
    """fetch_files runs the program and answers with no files and a note in the message."""
    body = client.post(
        "/run_code", json={"code": "print(1)", "language": "python", "fetch_files": ["out.txt"]}
    ).json()
    assert body["status"] == "Success"
    assert body["files"] == {}
    assert "fetch_files is not supported" in body["message"]


@docker
def test_run_timeout_over_cap_is_clamped(client: httpx.Client) -> None:
    """A run_timeout above the policy cap runs with the cap and says so in the message."""
    body = verl_post(client, "print(1)", timeout=3600).json()
    assert body["status"] == "Success"
    assert "clamped" in body["message"]


@docker
@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"{not json", id="malformed-json"),
        pytest.param(b'{"language": "python"}', id="missing-code"),
        pytest.param(b'{"code": "pass"}', id="missing-language"),
        pytest.param(b'{"code": "pass", "language": "klingon"}', id="unknown-language"),
        pytest.param(b'{"code": 5, "language": "python"}', id="code-not-a-string"),
        pytest.param(b'{"code": "pass", "language": "python", "run_timeout": "soon"}', id="bad-timeout"),
        pytest.param(b'{"code": "pass", "language": "python", "run_timeout": 0}', id="zero-timeout"),
        pytest.param(b'{"code": "pass", "language": "python", "stdin": 3}', id="stdin-not-a-string"),
        pytest.param(b"[]", id="not-an-object"),
        pytest.param(json.dumps({"code": "#" * 70_000, "language": "python"}).encode(), id="code-over-cap"),
    ],
)
def test_malformed_input_is_4xx(client: httpx.Client, content: bytes) -> None:
    """Malformed or over-cap requests get a 422 and the service stays up."""
    response = client.post("/run_code", content=content, headers=VERL_HEADERS)
    assert response.status_code == 422
    assert client.get("/healthz").status_code == 200


# Without Docker: the overload paths and the pure mapping, on an app whose pools never start.


@pytest.fixture
def offline() -> FastAPI:
    """An app on a fake backend whose lifespan never runs, so isolation stays unavailable."""
    return create_app(Settings(instance="fusion-offline", warm_pools=False), backend=FakeBackend())


def call(app: FastAPI, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One in-process request through httpx's ASGI transport (no sockets, no lifespan)."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandboxd.test") as http:
            return await http.request(method, url, **kwargs)

    return asyncio.run(send())


def test_pool_exhaustion_is_504_with_retry_after(offline: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """No free sandbox in time is a 504 (which verl retries) with Retry-After and a SandboxError body."""

    async def exhausted(*_: Any) -> list[RunResult]:
        raise PoolExhausted("no warm sandbox for policy default within 30.0s")

    monkeypatch.setattr(offline.state.service, "run", exhausted)
    response = call(offline, "POST", "/run_code", content=verl_body("print(1)"), headers=VERL_HEADERS)
    assert response.status_code == 504
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert set(body) == RESPONSE_KEYS
    assert body["status"] == "SandboxError"
    assert "no warm sandbox" in body["message"]


def test_isolation_unavailable_is_503_with_retry_after(offline: FastAPI) -> None:
    """When sandboxd cannot isolate, /run_code fails closed with a 503, Retry-After and the same shape."""
    response = call(offline, "POST", "/run_code", content=verl_body("print(1)"), headers=VERL_HEADERS)
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert set(response.json()) == RESPONSE_KEYS
    assert response.json()["status"] == "SandboxError"


@pytest.mark.parametrize(
    ("result", "status", "run_status", "return_code"),
    [
        pytest.param(RunResult(Status.OK, exit_code=0), "Success", "Finished", 0, id="ok"),
        pytest.param(RunResult(Status.RUNTIME_ERROR, exit_code=3), "Failed", "Finished", 3, id="exit-3"),
        pytest.param(
            RunResult(Status.RUNTIME_ERROR, signal=signal.SIGSEGV), "Failed", "Finished", -11, id="segv"
        ),
        pytest.param(RunResult(Status.RUNTIME_ERROR, exit_code=0), "Failed", "Finished", 1, id="no-frame"),
        pytest.param(
            RunResult(Status.TIMEOUT, signal=signal.SIGKILL),
            "Failed",
            "TimeLimitExceeded",
            None,
            id="timeout",
        ),
        pytest.param(RunResult(Status.MEMORY_LIMIT, exit_code=1), "Failed", "Finished", 1, id="memoryerror"),
        pytest.param(RunResult(Status.MEMORY_LIMIT), "Failed", "Finished", -9, id="oom-kill"),
        pytest.param(
            RunResult(Status.OUTPUT_LIMIT, signal=signal.SIGKILL), "Failed", "Finished", -9, id="output-limit"
        ),
        pytest.param(
            RunResult(Status.SANDBOX_VIOLATION, signal=signal.SIGSYS), "Failed", "Finished", -31, id="seccomp"
        ),
        pytest.param(
            RunResult(Status.INTERNAL_ERROR, detail="boom"), "SandboxError", "Error", None, id="internal"
        ),
    ],
)
def test_status_mapping(result: RunResult, status: str, run_status: str, return_code: int | None) -> None:
    """Each sandboxd verdict maps to SandboxFusion's status, run status and return code; never Failed with 0."""
    response = to_fusion(result, [])
    assert response.status == status
    assert response.run_result is not None
    assert response.run_result.status == run_status
    assert response.run_result.return_code == return_code
    assert response.sandboxd_status == result.status.value


@pytest.mark.parametrize(
    ("run_timeout", "memory_limit_mb", "expected"),
    [
        pytest.param(10, -1, (10, None, False), id="defaults"),
        pytest.param(3, 256, (3, 256 * 2**20, False), id="within-caps"),
        pytest.param(600, 1024, (60, 2**30, True), id="timeout-over-cap"),
        pytest.param(10, 8192, (10, 2**30, True), id="memory-over-cap"),
        pytest.param(10, 1, (10, 16 * 2**20, True), id="memory-under-floor"),
    ],
)
def test_limits_translation(
    run_timeout: float, memory_limit_mb: int, expected: tuple[float, int | None, bool]
) -> None:
    """run_timeout and memory_limit_MB become wall/CPU time and memory, clamped to the default policy's caps."""
    wall, memory, clamped = expected
    policy = load_policies(BUILTIN_POLICIES)["default"]
    body = RunCodeRequest(
        code="", language="python", run_timeout=run_timeout, memory_limit_MB=memory_limit_mb
    )
    limits, notes = fusion_limits(body, policy)
    assert limits.wall_time_seconds == limits.cpu_time_seconds == wall
    assert limits.memory_bytes == memory
    assert bool(notes) is clamped


def test_route_is_documented(offline: FastAPI) -> None:
    """/run_code appears in the OpenAPI schema with its 504 and 503 answers."""
    operation = call(offline, "GET", "/openapi.json").json()["paths"]["/run_code"]["post"]
    assert {"200", "422", "503", "504"} <= set(operation["responses"])
