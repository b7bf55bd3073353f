"""trainer_client: chunking, retries and errors over mock transports; the real daemon end to end."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import trainer_client
from sandboxd.api.app import create_app
from sandboxd.policy import AzrOptions, BatchOptions
from sandboxd.settings import Settings
from sandboxd.testing import FakeBackend
from trainer_client import (
    AsyncSandboxClient,
    Limits,
    ProposedTask,
    RetryPolicy,
    SandboxClient,
    SandboxRequestError,
    SandboxServerError,
    SandboxTimeout,
    SandboxUnavailable,
)
from trainer_client import retry as retry_module
from trainer_client.azr import SandboxdExecutor, uses_banned
from trainer_client.base import DEFAULT_AZR_CHUNK_SIZE, DEFAULT_CHUNK_SIZE
from trainer_client.retry import parse_retry_after
from trainer_client.rewards import (
    compute_score,
    compute_score_batch,
    extract_answer,
    make_trl_reward,
    parse_ground_truth,
)

SEED_ROWS = Path(__file__).resolve().parent / "data" / "azr" / "7b_coder_seed_io.jsonl"
Handler = Callable[[httpx.Request], httpx.Response]


def _run_result(index: int, **fields: Any) -> dict[str, Any]:
    return {"id": f"r{index}", "status": "ok", "stdout": f"{index}\n", **fields}


def _batch_handler(seen: list[dict[str, Any]]) -> Handler:
    """Echo each run's code back as its stdout and record each request body."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        return httpx.Response(
            200, json={"results": [_run_result(0, stdout=run["code"]) for run in body["runs"]]}
        )

    return handle


def _flaky(responses: list[httpx.Response | Exception], calls: list[httpx.Request]) -> Handler:
    """Answer with ``responses`` in turn (raising the exceptions), recording every request."""

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        answer = responses[min(len(calls), len(responses)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handle


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the client's backoff waits instead of sleeping."""
    waits: list[float] = []
    monkeypatch.setattr(retry_module, "sleep", waits.append)

    async def fake_async_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(retry_module, "async_sleep", fake_async_sleep)
    return waits


def _client(handler: Handler, **options: Any) -> SandboxClient:
    return SandboxClient("http://sandboxd.test", transport=httpx.MockTransport(handler), **options)


# --- the package surface ---


def test_all_lists_exactly_the_public_members() -> None:
    """``__all__`` is sorted and names every public, non-module attribute of the package."""
    public = sorted(
        name
        for name, value in vars(trainer_client).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    )
    assert trainer_client.__all__ == public
    assert all(hasattr(trainer_client, name) for name in trainer_client.__all__)


def test_client_imports_neither_docker_nor_fastapi() -> None:
    """Importing every client module pulls in no docker, fastapi, starlette or sandboxd."""
    probe = (
        "import sys, trainer_client, trainer_client.azr, trainer_client.rewards\n"
        "bad = {m.split('.')[0] for m in sys.modules} & {'docker', 'fastapi', 'starlette', 'sandboxd'}\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)


def test_base_url_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without base_url the client uses $SANDBOXD_URL, then loopback port 8080."""
    monkeypatch.delenv("SANDBOXD_URL", raising=False)
    with SandboxClient() as client:
        assert client.base_url == "http://127.0.0.1:8080"
    monkeypatch.setenv("SANDBOXD_URL", "http://127.0.0.1:9999")
    with SandboxClient() as client:
        assert client.base_url == "http://127.0.0.1:9999"


def test_reward_module_loads_from_a_file_path_like_verl() -> None:
    """verl's custom_reward_function loads rewards.py by path; its functions are then found by name."""
    path = Path(trainer_client.__file__).parent / "rewards.py"
    spec = importlib.util.spec_from_file_location("custom_module", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.compute_score)
    assert callable(module.compute_score_batch)
    assert callable(module.trl_reward)


# --- request building and chunking ---


def test_run_sends_only_what_was_asked() -> None:
    """``run`` posts the code, stdin, the limits that were set and the policy, and parses the result."""
    bodies: list[dict[str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=_run_result(7, some_future_field=True))

    with _client(handle, policy="pooled") as client:
        result = client.run("print(7)", stdin="x", limits=Limits(wall_time_seconds=2))
    assert result.ok
    assert result.stdout == "7\n"
    assert bodies == [
        {
            "code": "print(7)",
            "stdin": "x",
            "limits": {"wall_time_seconds": 2.0},
            "metadata": {},
            "policy": "pooled",
        }
    ]


def test_batch_is_chunked_and_reassembled_in_order() -> None:
    """600 runs with chunk size 256 go out as 256 + 256 + 88 and come back in request order."""
    bodies: list[dict[str, Any]] = []
    with _client(_batch_handler(bodies), chunk_size=256) as client:
        results = client.run_batch([f"print({i})" for i in range(600)])
    assert sorted(len(body["runs"]) for body in bodies) == [88, 256, 256]  # sent concurrently
    assert [result.stdout for result in results] == [f"print({i})" for i in range(600)]


def test_default_chunks_fit_the_default_caps() -> None:
    """Without ``chunk_size``, a batch goes 256 runs to a request (a policy's default ``batch.max_runs``)
    and AZR calls 512 tasks or answers (within the default ``azr.max_tasks`` of 1,024); a ``chunk_size``
    applies to both."""
    seen: list[tuple[str, int]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        items = body.get("runs") or body.get("tasks") or body["answers"]
        seen.append((request.url.path, len(items)))
        if "runs" in body:
            return httpx.Response(200, json={"results": [_run_result(0) for _ in items]})
        if "tasks" in body:
            return httpx.Response(200, json={"results": [{"valid": True, "reason": "ok"} for _ in items]})
        return httpx.Response(
            200, json={"results": [{"correct": True, "reward": 1.0, "reason": "ok"}] * len(items)}
        )

    task = {"task_type": "deduction", "program": "def f(x):\n    return x", "inputs": ["1"]}
    answer = {"task_type": "deduction", "answer": "1", "expected_output": "1"}
    with _client(handle) as client:
        client.run_batch(["pass"] * 300)
        client.validate([task] * 600)
        client.check([answer] * 513)
    assert sorted(seen) == [
        ("/v1/azr/check", 1),
        ("/v1/azr/check", 512),
        ("/v1/azr/validate", 88),
        ("/v1/azr/validate", 512),
        ("/v1/runs/batch", 44),
        ("/v1/runs/batch", 256),
    ]
    assert BatchOptions().max_runs == DEFAULT_CHUNK_SIZE == 256
    assert AzrOptions().max_tasks >= DEFAULT_AZR_CHUNK_SIZE == 512
    seen.clear()
    with _client(handle, chunk_size=100) as client:
        client.run_batch(["pass"] * 150)
        client.check([answer] * 150)
    assert sorted(seen) == [
        ("/v1/azr/check", 50),
        ("/v1/azr/check", 100),
        ("/v1/runs/batch", 50),
        ("/v1/runs/batch", 100),
    ]


def test_validate_and_check_are_chunked_with_their_options() -> None:
    """validate and check split long lists too, and every chunk carries the request-wide options."""
    bodies: list[dict[str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        items = body.get("tasks") or body["answers"]
        if request.url.path == "/v1/azr/validate":
            results = [{"valid": True, "reason": "ok", "outputs": [t["inputs"][0]]} for t in items]
        else:
            results = [{"correct": True, "reward": 1.0, "reason": "ok"} for _ in items]
        return httpx.Response(200, json={"results": results})

    tasks = [
        ProposedTask(task_type="deduction", program="def f(x):\n    return x", inputs=[str(i)])
        for i in range(5)
    ]
    with _client(handle, chunk_size=2) as client:
        validated = client.validate(tasks, truncate_outputs=True, policy="pooled")
        checked = client.check([{"task_type": "deduction", "answer": "1", "expected_output": "1"}] * 3)
    assert [r.outputs[0] for r in validated] == [str(i) for i in range(5)]
    # Chunks of one call go out concurrently (in any order); validate returns before check starts.
    assert sorted(len(b["tasks"]) for b in bodies[:3]) == [1, 2, 2]
    assert sorted(t["inputs"][0] for b in bodies[:3] for t in b["tasks"]) == [str(i) for i in range(5)]
    assert all(
        b["truncate_outputs"] and b["allow_non_canonical"] and b["policy"] == "pooled" for b in bodies[:3]
    )
    assert sorted(len(b["answers"]) for b in bodies[3:]) == [1, 2]
    assert [r.reward for r in checked] == [1.0, 1.0, 1.0]


def _overlapping_handler(state: dict[str, int], lock: threading.Lock) -> Handler:
    """Echo each run's code as stdout, holding every chunk a moment so that chunks overlap, and count the
    most chunks in flight at once in ``state["peak"]``. Chunks finish out of order."""

    def handle(request: httpx.Request) -> httpx.Response:
        runs = json.loads(request.content)["runs"]
        with lock:
            state["in_flight"] += 1
            state["peak"] = max(state["peak"], state["in_flight"])
        time.sleep(0.02 + 0.02 * (len(runs) % 3))
        with lock:
            state["in_flight"] -= 1
        return httpx.Response(200, json={"results": [_run_result(0, stdout=r["code"]) for r in runs]})

    return handle


@pytest.mark.parametrize("bound", [1, 3])
def test_sync_chunks_run_concurrently_within_the_bound(bound: int) -> None:
    """The sync client sends chunks concurrently, never more than max_concurrency, and keeps order;
    max_concurrency=1 sends them one after another."""
    state = {"in_flight": 0, "peak": 0}
    handler = _overlapping_handler(state, threading.Lock())
    with _client(handler, chunk_size=7, max_concurrency=bound) as client:
        results = client.run_batch([str(i) for i in range(100)])
    assert [result.stdout for result in results] == [str(i) for i in range(100)]
    assert state["peak"] == bound


def test_sync_chunks_raise_the_first_failing_chunk_in_order() -> None:
    """A later chunk that fails first does not hide an earlier chunk's failure: the first chunk in order
    that failed is raised, as a sequential client would have raised it."""

    def handle(request: httpx.Request) -> httpx.Response:
        [run] = json.loads(request.content)["runs"]
        if run["code"] == "0":
            time.sleep(0.05)
            return httpx.Response(422, json={"error": "invalid_request", "detail": "first"})
        return httpx.Response(413, json={"error": "too_large", "detail": "second"})

    with (
        _client(handle, chunk_size=1, max_concurrency=2) as client,
        pytest.raises(SandboxRequestError) as caught,
    ):
        client.run_batch(["0", "1", "2"])
    assert caught.value.error == "invalid_request"


@pytest.mark.parametrize("client_class", [SandboxClient, AsyncSandboxClient])
def test_max_concurrency_must_be_positive(
    client_class: type[SandboxClient] | type[AsyncSandboxClient],
) -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        client_class("http://t", max_concurrency=0)


def test_async_chunks_run_concurrently_within_the_bound() -> None:
    """The async client sends chunks concurrently, never more than max_concurrency, and keeps order."""
    in_flight = 0
    peak = 0

    async def handle(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        runs = json.loads(request.content)["runs"]
        await asyncio.sleep(0.01 * (len(runs) % 3))  # chunks finish out of order
        in_flight -= 1
        return httpx.Response(200, json={"results": [_run_result(0, stdout=r["code"]) for r in runs]})

    async def main() -> list[str]:
        transport = httpx.MockTransport(handle)
        async with AsyncSandboxClient(
            "http://t", transport=transport, chunk_size=7, max_concurrency=3
        ) as client:
            return [result.stdout for result in await client.run_batch([str(i) for i in range(100)])]

    assert asyncio.run(main()) == [str(i) for i in range(100)]
    assert peak == 3


def test_async_client_talks_to_the_real_app_over_asgi() -> None:
    """Over ``httpx.ASGITransport`` the async client parses the real app's responses (fake backend)."""
    app = create_app(Settings(instance="client-asgi"), backend=FakeBackend())

    async def main() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with AsyncSandboxClient("http://testserver", transport=transport, chunk_size=2) as client:
                assert (await client.health()).status == "ok"
                for _ in range(200):  # the pool warms up in the background after start-up
                    if (await client.ready()).ready:
                        break
                    await asyncio.sleep(0.05)
                assert (await client.ready()).ready
                results = await client.run_batch(["print(1)"] * 5)
                assert [r.status for r in results] == ["ok"] * 5
                task = {"task_type": "deduction", "program": "def f(x):\n    return x", "inputs": ["1"]}
                [validated] = await client.validate([task])
                assert validated.valid is False  # the fake backend returns no values
                with pytest.raises(SandboxRequestError) as caught:
                    await client.run("pass", policy="no-such-policy")
                assert caught.value.error == "unknown_policy"

    asyncio.run(main())


# --- retries and errors ---


@pytest.mark.parametrize("status", [429, 503, 504])
def test_refusals_are_retried_honouring_retry_after(status: int, sleeps: list[float]) -> None:
    """429, 503 and 504 are retried, each wait at least the server's Retry-After seconds."""
    calls: list[httpx.Request] = []
    refusal = httpx.Response(
        status, headers={"Retry-After": "7"}, json={"error": "unavailable", "detail": "busy"}
    )
    handler = _flaky([refusal, refusal, httpx.Response(200, json=_run_result(1))], calls)
    with _client(handler) as client:
        assert client.run("pass").ok
    assert len(calls) == 3
    assert sleeps == [7.0, 7.0]


def test_backoff_grows_exponentially_with_a_cap() -> None:
    """Without Retry-After the waits double from the base up to the cap (jitter off)."""
    policy = RetryPolicy(max_attempts=8, backoff_base_seconds=0.5, backoff_max_seconds=4.0, jitter=False)
    waits = [policy.delay(attempt, None, elapsed=0.0) for attempt in range(1, 9)]
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, None]


def test_jitter_stays_within_the_backoff() -> None:
    """Full jitter draws each wait from [0, backoff]."""
    policy = RetryPolicy(backoff_base_seconds=1.0, backoff_max_seconds=8.0)
    waits = [policy.delay(4, None, elapsed=0.0) for _ in range(200)]
    assert all(wait is not None and 0.0 <= wait <= 8.0 for wait in waits)
    assert len(set(waits)) > 1


def test_gives_up_after_max_attempts(sleeps: list[float]) -> None:
    """After max_attempts refusals the client raises SandboxUnavailable with the last status."""
    calls: list[httpx.Request] = []
    handler = _flaky([httpx.Response(503, json={"error": "unavailable", "detail": "engine down"})], calls)
    with (
        _client(handler, retry=RetryPolicy(max_attempts=4)) as client,
        pytest.raises(SandboxUnavailable) as caught,
    ):
        client.run("pass")
    assert len(calls) == 4
    assert len(sleeps) == 3
    assert caught.value.attempts == 4
    assert caught.value.status_code == 503
    assert "engine down" in str(caught.value)


def test_deadline_stops_retrying(sleeps: list[float]) -> None:
    """A Retry-After that would end past the total deadline means giving up now, without waiting."""
    calls: list[httpx.Request] = []
    handler = _flaky([httpx.Response(429, headers={"Retry-After": "120"})], calls)
    with (
        _client(handler, retry=RetryPolicy(deadline_seconds=60)) as client,
        pytest.raises(SandboxUnavailable),
    ):
        client.run("pass")
    assert len(calls) == 1
    assert sleeps == []


def test_connect_errors_are_retried(sleeps: list[float]) -> None:
    """A refused connection is retried with backoff and then succeeds."""
    calls: list[httpx.Request] = []
    handler = _flaky([httpx.ConnectError("refused"), httpx.Response(200, json=_run_result(1))], calls)
    with _client(handler) as client:
        assert client.run("pass").ok
    assert len(calls) == 2
    assert len(sleeps) == 1


def test_connect_errors_become_unavailable_after_retries(sleeps: list[float]) -> None:
    """A daemon that never accepts connections ends in SandboxUnavailable chained to the httpx error."""
    handler = _flaky([httpx.ConnectError("refused")], [])
    with (
        _client(handler, retry=RetryPolicy(max_attempts=3)) as client,
        pytest.raises(SandboxUnavailable) as caught,
    ):
        client.run("pass")
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert caught.value.status_code is None


def test_read_timeout_raises_sandbox_timeout_without_retry(sleeps: list[float]) -> None:
    """A read timeout is not retried (the work may still be running) and raises SandboxTimeout."""
    calls: list[httpx.Request] = []
    handler = _flaky([httpx.ReadTimeout("slow")], calls)
    with _client(handler) as client, pytest.raises(SandboxTimeout):
        client.run("pass")
    assert len(calls) == 1
    assert sleeps == []


def test_client_errors_carry_the_servers_problem(sleeps: list[float]) -> None:
    """A 4xx raises SandboxRequestError with the server's error and detail, without retrying."""
    calls: list[httpx.Request] = []
    problem = {"error": "limit_exceeded", "detail": "limits above the caps of policy default"}
    handler = _flaky([httpx.Response(422, json=problem)], calls)
    with _client(handler) as client, pytest.raises(SandboxRequestError) as caught:
        client.run("pass")
    assert (caught.value.status_code, caught.value.error, caught.value.detail) == (422, *problem.values())
    assert len(calls) == 1
    assert sleeps == []


def test_server_faults_and_unreadable_answers_are_server_errors() -> None:
    """A 500, and a 200 whose body does not match the request, raise SandboxServerError."""
    with _client(
        _flaky([httpx.Response(500, json={"error": "sandbox_fault", "detail": "boom"})], [])
    ) as client:
        with pytest.raises(SandboxServerError) as caught:
            client.run("pass")
        assert caught.value.error == "sandbox_fault"
    short = httpx.Response(200, json={"results": [_run_result(0)]})
    with _client(_flaky([short], [])) as client, pytest.raises(SandboxServerError) as caught:
        client.run_batch(["pass", "pass"])
    assert caught.value.error == "unreadable_response"


def test_async_client_retries_and_raises_like_the_sync_one(sleeps: list[float]) -> None:
    """The async twin retries 503 with Retry-After and raises the first chunk's error as itself."""
    calls: list[httpx.Request] = []
    handler = _flaky(
        [httpx.Response(503, headers={"Retry-After": "2"}), httpx.Response(200, json=_run_result(1))], calls
    )

    async def main() -> None:
        async with AsyncSandboxClient("http://t", transport=httpx.MockTransport(handler)) as client:
            assert (await client.run("pass")).ok
        bad = httpx.MockTransport(_flaky([httpx.Response(422, json={"error": "invalid_request"})], []))
        async with AsyncSandboxClient("http://t", transport=bad, chunk_size=1) as client:
            with pytest.raises(SandboxRequestError):
                await client.run_batch(["a", "b", "c"])

    asyncio.run(main())
    assert sleeps == [2.0]


def test_ready_reports_not_ready_as_a_result() -> None:
    """``ready`` returns ready=False for a 503 readiness body instead of raising or retrying."""
    body = {"ready": False, "reason": "engine down", "pools": {}}
    with _client(_flaky([httpx.Response(503, json=body)], [])) as client:
        readiness = client.ready()
    assert readiness.ready is False
    assert readiness.reason == "engine down"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        pytest.param("3", 3.0, id="seconds"),
        pytest.param(" 1.5 ", 1.5, id="fractional"),
        pytest.param("Wed, 01 Jan 2025 00:00:10 GMT", 10.0, id="http-date"),
        pytest.param("soon", None, id="unreadable"),
        pytest.param(None, None, id="absent"),
    ],
)
def test_retry_after_parsing(header: str | None, seconds: float | None) -> None:
    """Retry-After is read as delta-seconds or an HTTP date; anything else is ignored."""
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after(header, now=now) == seconds


# --- AZR drop-in and reward helpers (pure parts) ---


@pytest.mark.parametrize(
    ("code", "banned", "for_errors", "expected"),
    [
        pytest.param("import os\ndef f(): pass", ["os"], [], True, id="import"),
        pytest.param("from os.path import join", ["os"], [], True, id="from-dotted"),
        pytest.param("import osmosis", ["os"], [], False, id="prefix-is-not-a-match"),
        pytest.param("def f():\n    assert 1", [], ["assert"], True, id="assert-for-errors"),
        pytest.param("def f(:\n  os", ["os"], [], True, id="unparsable-word-fallback"),
        pytest.param("def f(x):\n    return x", ["os", "sys"], ["raise"], False, id="clean"),
    ],
)
def test_banned_keywords_follow_azr(
    code: str, banned: list[str], for_errors: list[str], expected: bool
) -> None:
    """The banned-keyword rule matches AZR's: imported module parts and error-statement kinds."""
    assert uses_banned(code, banned, for_errors) is expected


def test_executor_dedupes_answers_and_never_scores_sandbox_faults() -> None:
    """Distinct answers are checked once, in order; an internal_error is None or raised, never 0.0."""
    sent: list[list[str]] = []
    rewards = {"1": 1.0, "2": 0.0}

    def handle(request: httpx.Request) -> httpx.Response:
        answers = [a["answer"] for a in json.loads(request.content)["answers"]]
        sent.append(answers)
        results = [
            {"correct": rewards[a] == 1.0, "reward": rewards[a], "reason": "ok"}
            if a in rewards
            else {"correct": False, "reward": 0.0, "reason": "internal_error", "detail": "sandbox died"}
            for a in answers
        ]
        return httpx.Response(200, json={"results": results})

    program = "def f(x):\n    return x"
    with SandboxdExecutor(client=_client(handle)) as executor:
        assert executor.eval_k_input_prediction(program, "1", ["1", "2", "1", "2"]) == [1.0, 0.0, 1.0, 0.0]
        assert sent == [["1", "2"]]
        assert executor.eval_input_prediction(program, "1", "3") is None
        with pytest.raises(SandboxServerError):
            executor.eval_k_output_prediction(program, "1", ["1", "3"])


@pytest.mark.parametrize(
    ("completion", "answer"),
    [
        pytest.param("<think>maybe <answer>1</answer></think> <answer> 42 </answer>", "42", id="after-think"),
        pytest.param(
            "<answer>```python\ndef f(x):\n    return x\n```</answer>", "def f(x):\n    return x", id="fenced"
        ),
        pytest.param("<answer>1</answer> then <answer>2</answer>", "2", id="last-block"),
        pytest.param("the answer is 42", None, id="no-tag"),
        pytest.param("<answer>   </answer>", None, id="empty"),
    ],
)
def test_extract_answer(completion: str, answer: str | None) -> None:
    """The answer is the last <answer> block after the reasoning, without fences."""
    assert extract_answer(completion) == answer


def test_ground_truth_must_name_a_task_and_its_fields() -> None:
    """Ground truths accept AZR's task names and reject missing fields."""
    assert parse_ground_truth('{"task_type": "code_o", "snippet": "def f(): pass", "output": "1"}')[
        "task_type"
    ] == ("deduction")
    with pytest.raises(ValueError, match="task_type"):
        parse_ground_truth({"task_type": "riddle"})
    with pytest.raises(ValueError, match="outputs"):
        parse_ground_truth({"task_type": "induction", "inputs": ["1"]})


def test_trl_reward_skips_answerless_completions() -> None:
    """Completions without an answer score 0.0 and only answered ones are sent to be checked."""
    sent: list[dict[str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        answers = json.loads(request.content)["answers"]
        sent.extend(answers)
        return httpx.Response(
            200, json={"results": [{"correct": True, "reward": 1.0, "reason": "ok"} for _ in answers]}
        )

    truth = {"task_type": "abduction", "program": "def f(x):\n    return x", "output": "3"}
    reward = make_trl_reward(_client(handle))
    completions = [
        [{"role": "assistant", "content": "<answer>3</answer>"}],
        [{"role": "assistant", "content": "?"}],
    ]
    assert reward(completions, ground_truth=[truth, truth]) == [1.0, 0.0]
    assert [a["answer"] for a in sent] == ["3"]


# --- against the real daemon ---


def _seed_rows(count: int) -> list[dict[str, Any]]:
    with SEED_ROWS.open() as lines:
        return [json.loads(line) for _, line in zip(range(count), lines, strict=False)]


@pytest.fixture(scope="module")
def sandbox(server_url: str) -> Iterator[SandboxClient]:
    """A sync client of the session's real daemon."""
    with SandboxClient(server_url) as client:
        yield client


@pytest.mark.docker
def test_real_run_and_health(sandbox: SandboxClient) -> None:
    """A real run returns its stdout, and the daemon reports healthy and ready."""
    result = sandbox.run("import sys; print(sys.stdin.read() * 2)", stdin="ab")
    assert result.ok
    assert result.stdout == "abab\n"
    assert sandbox.health().status == "ok"
    assert sandbox.ready().ready


@pytest.mark.docker
def test_real_batch_of_600_keeps_order(server_url: str) -> None:
    """600 runs in chunks of 256 (sent concurrently) each run once and come back in request order."""
    with SandboxClient(server_url, chunk_size=256) as client:
        results = client.run_batch([f"print({i})" for i in range(600)])
    assert [result.stdout for result in results] == [f"{i}\n" for i in range(600)]


@pytest.mark.docker
def test_real_async_batch_keeps_order(server_url: str) -> None:
    """The async client's concurrent chunks against the daemon keep order too."""

    async def main() -> list[str]:
        async with AsyncSandboxClient(server_url, chunk_size=50, max_concurrency=3) as client:
            return [r.stdout for r in await client.run_batch([f"print({i})" for i in range(200)])]

    assert asyncio.run(main()) == [f"{i}\n" for i in range(200)]


@pytest.mark.docker
def test_real_policy_caps_raise_request_errors(sandbox: SandboxClient) -> None:
    """Limits above the policy's caps are a 422 carrying the cap that was exceeded."""
    with pytest.raises(SandboxRequestError) as caught:
        sandbox.run("pass", limits={"wall_time_seconds": 3000})
    assert caught.value.status_code == 422
    assert caught.value.error == "limit_exceeded"
    assert "wall_time_seconds" in str(caught.value.detail)


@pytest.mark.docker
def test_real_validate_and_check_seed_rows(sandbox: SandboxClient) -> None:
    """Real AZR seed rows validate, and their recorded outputs and inputs check as correct answers."""
    rows = _seed_rows(6)
    tasks = [
        ProposedTask(
            task_type="deduction", program=row["snippet"], imports=row["imports"], inputs=[row["input"]]
        )
        for row in rows
    ]
    validated = sandbox.validate(tasks, truncate_outputs=True)
    assert [result.valid for result in validated] == [True] * len(rows), [r.detail for r in validated]
    answers: list[dict[str, Any]] = []
    for row in rows:
        common = {"program": row["snippet"], "imports": row["imports"], "expected_output": row["output"]}
        answers.append({"task_type": "deduction", "answer": row["output"], "input": row["input"], **common})
        answers.append({"task_type": "abduction", "answer": row["input"], **common})
    checked = sandbox.check(answers)
    assert all(result.correct for result in checked), [r.detail for r in checked]
    [wrong] = sandbox.check([{**answers[0], "answer": "'something else'"}])
    assert (wrong.correct, wrong.reason) == (False, "wrong_answer")


@pytest.mark.docker
def test_real_azr_executor_end_to_end(server_url: str) -> None:
    """The PythonExecutor drop-in keeps AZR's method names and return conventions against the daemon."""
    row = _seed_rows(1)[0]
    program, given = row["snippet"], row["input"]
    raising = "def f(x):\n    raise ValueError(x)"
    with SandboxdExecutor(server_url, timeout_length=10, ast_check=False, max_workers=4) as executor:
        assert executor.run_code(program, given, []) == ("'Hello world'", "Done")
        output, status = executor.run_code(raising, "1")
        assert output == ""
        assert "error" in status.lower()
        assert "ValueError" in status
        assert executor.validate_code(program, given) is True
        assert executor.validate_code(raising, "1") is False
        assert executor.check_all(program, given, ["os"], True, []) == (True, "'Hello world'")
        assert executor.check_all("import os\n" + program, given, ["os"]) == (False, None)
        assert executor.check_all(raising, "1", check_error=True) == (True, "ValueError")
        assert executor.check_all(program, given, check_error=True) == (True, "NoError")
        assert executor.eval_input_prediction(program, row["output"], given) == 1.0
        assert executor.eval_input_prediction(program, row["output"], "'nope'") == 0.0
        assert executor.eval_output_prediction(program, row["output"], "'Hello world'") == 1.0
        assert executor.eval_output_prediction(program, row["output"], "") == 0.0
        k_inputs = [given, "1) or True or (1", "'other'", given]
        assert executor.eval_k_input_prediction(program, row["output"], k_inputs) == [1.0, 0.0, 0.0, 1.0]
        k_outputs = ["'Hello world'", "", "'Hello  world'"]
        assert executor.eval_k_output_prediction(program, row["output"], k_outputs) == [1.0, 0.0, 0.0]
        assert executor.check_all_batch([(program, given, None), (raising, "2", None)]) == [
            (True, "'Hello world'"),
            (False, ""),
        ]


@pytest.mark.docker
def test_real_reward_functions(server_url: str) -> None:
    """verl's compute_score and TRL's reward function score seed-row answers through the daemon."""
    row = _seed_rows(2)[1]
    truth = {"task_type": "code_o", "snippet": row["snippet"], "input": row["input"], "output": row["output"]}
    right = f"<think>reasoning</think><answer>{row['output']}</answer>"
    scored = compute_score("azr", right, json.dumps(truth), sandbox_url=server_url)
    assert scored == {"score": 1.0, "correct": True, "reason": "ok"}
    batch = compute_score_batch(
        ["azr"] * 2, [right, "<answer>'x'</answer>"], [truth, truth], sandbox_url=server_url
    )
    assert [item["score"] for item in batch] == [1.0, 0.0]
    abduction = {"task_type": "abduction", "program": row["snippet"], "output": row["output"]}
    reward = make_trl_reward(sandbox_url=server_url)
    assert reward([f"<answer>{row['input']}</answer>", "none"], ground_truth=[abduction, abduction]) == [
        1.0,
        0.0,
    ]
