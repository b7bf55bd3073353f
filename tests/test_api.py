"""The HTTP API against a real server and real containers: happy paths and hostile input."""

from __future__ import annotations

import json

import httpx
import pytest
from daemon_process import settle

pytestmark = pytest.mark.docker


def test_run_returns_output_and_usage(client: httpx.Client) -> None:
    """A benign program runs to ok with its stdout, exit code and resource usage."""
    response = client.post("/v1/runs", json={"code": "import numpy as np\nprint(int(np.arange(5).sum()))"})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["stdout"] == "10\n"
    assert body["exit_code"] == 0
    assert 0 < body["wall_time_seconds"] < 5
    assert body["peak_memory_bytes"] > 1_000_000
    assert body["policy"] == "default"


def test_stdin_is_delivered(client: httpx.Client) -> None:
    """The request's stdin string is what the program reads."""
    body = client.post(
        "/v1/runs", json={"code": "import sys; print(sys.stdin.read()[::-1])", "stdin": "héllo"}
    ).json()
    assert body["stdout"] == "olléh\n"


def test_exception_is_runtime_error_with_traceback(client: httpx.Client) -> None:
    """An uncaught exception is runtime_error; stderr holds the program's traceback, not the runner's,
    exactly as the interpreter prints it (the child uses the interpreter's own printer)."""
    body = client.post("/v1/runs", json={"code": "def f():\n    raise ValueError('nope')\nf()"}).json()
    assert body["status"] == "runtime_error"
    assert body["stderr"] == (
        "Traceback (most recent call last):\n"
        '  File "<program>", line 3, in <module>\n'
        '  File "<program>", line 2, in f\n'
        "ValueError: nope\n"
    )


def test_chained_exception_shows_both_tracebacks(client: httpx.Client) -> None:
    """A chained exception prints its cause first, then the exception, each from the program's frames."""
    code = "try:\n    1 / 0\nexcept ZeroDivisionError as exc:\n    raise KeyError('k') from exc\n"
    body = client.post("/v1/runs", json={"code": code}).json()
    assert body["status"] == "runtime_error"
    assert body["stderr"] == (
        "Traceback (most recent call last):\n"
        '  File "<program>", line 2, in <module>\n'
        "ZeroDivisionError: division by zero\n"
        "\n"
        "The above exception was the direct cause of the following exception:\n"
        "\n"
        "Traceback (most recent call last):\n"
        '  File "<program>", line 4, in <module>\n'
        "KeyError: 'k'\n"
    )


def test_child_heap_holds_no_traceback_module(client: httpx.Client) -> None:
    """The fork-server's image, which every run is forked from, does not carry the traceback module and
    what it imports (about 280 KB that each fork and exit would pay: docs/design.md)."""
    code = "import sys\nprint(sorted(m for m in ('traceback', 'linecache', 'tokenize', 'textwrap') if m in sys.modules))"
    body = client.post("/v1/runs", json={"code": code}).json()
    assert body["status"] == "ok"
    assert body["stdout"] == "[]\n"


def test_batch_keeps_order(client: httpx.Client) -> None:
    """Batch results come back in request order, each from its own process."""
    runs = [{"code": f"import os; print({i}, os.getpid())"} for i in range(30)]
    results = client.post("/v1/runs/batch", json={"runs": runs}).json()["results"]
    assert [r["stdout"].split()[0] for r in results] == [str(i) for i in range(30)]
    assert len({r["stdout"].split()[1] for r in results}) == 30


def test_requests_never_share_containers_by_default(client: httpx.Client) -> None:
    """Under the default policy, two requests never run in the same container."""
    ids = {client.post("/v1/runs", json={"code": "pass"}).json()["sandbox_id"] for _ in range(4)}
    assert len(ids) == 4


def test_pooled_policy_reuses_containers(client: httpx.Client) -> None:
    """Under the pooled policy, consecutive requests may share a container but never a process."""
    bodies = [
        client.post("/v1/runs", json={"code": "import os; print(os.getpid())", "policy": "pooled"}).json()
        for _ in range(6)
    ]
    assert {b["status"] for b in bodies} == {"ok"}
    assert len({b["sandbox_id"] for b in bodies}) < 6
    assert len({b["stdout"] for b in bodies}) == 6


def test_hash_seed_is_pinned(client: httpx.Client) -> None:
    """PYTHONHASHSEED is pinned, so str hashes agree across processes and containers."""
    code = "print(hash('sandboxd'))"
    outputs = {client.post("/v1/runs", json={"code": code}).json()["stdout"] for _ in range(3)}
    assert len(outputs) == 1


def test_random_state_is_fresh_per_run(client: httpx.Client) -> None:
    """Each child reseeds random and numpy, so two runs in one container draw different numbers."""
    code = "import random, numpy; print(random.random(), numpy.random.rand())"
    results = client.post("/v1/runs/batch", json={"runs": [{"code": code}] * 4}).json()["results"]
    assert len({r["stdout"] for r in results}) == 4


@pytest.mark.parametrize(
    ("content", "headers", "status", "error"),
    [
        pytest.param(
            b"{not json", {"content-type": "application/json"}, 422, "invalid_request", id="malformed-json"
        ),
        pytest.param(
            b'{"code": 5}', {"content-type": "application/json"}, 422, "invalid_request", id="wrong-type"
        ),
        pytest.param(
            b'{"code": "pass", "extra": 1}',
            {"content-type": "application/json"},
            422,
            "invalid_request",
            id="unknown-field",
        ),
        pytest.param(
            b'{"code": "\xff\xfe"}',
            {"content-type": "application/json"},
            400,
            "invalid_request",
            id="non-utf8",
        ),
        pytest.param(b"[]", {"content-type": "application/json"}, 422, "invalid_request", id="not-an-object"),
        pytest.param(
            b'{"code": "pass", "limits": {"wall_time_seconds": -1}}',
            {"content-type": "application/json"},
            422,
            "invalid_request",
            id="negative-limit",
        ),
        pytest.param(
            b'{"code": "pass", "limits": {"wall_time_seconds": 61}}',
            {"content-type": "application/json"},
            422,
            "limit_exceeded",
            id="limit-over-cap",
        ),
        pytest.param(
            b'{"code": "pass", "policy": "nope"}',
            {"content-type": "application/json"},
            422,
            "unknown_policy",
            id="unknown-policy",
        ),
        pytest.param(
            json.dumps({"code": "#" * 70_000}).encode(),
            {"content-type": "application/json"},
            422,
            "limit_exceeded",
            id="code-over-cap",
        ),
        pytest.param(
            b"x" * (33 * 1024 * 1024),
            {"content-type": "application/json"},
            413,
            "body_too_large",
            id="body-over-cap",
        ),
    ],
)
def test_bad_input_gets_clear_4xx(
    client: httpx.Client, content: bytes, headers: dict[str, str], status: int, error: str
) -> None:
    """Hostile or malformed requests get a 4xx with an error code, and the service stays up."""
    response = client.post("/v1/runs", content=content, headers=headers)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert client.get("/healthz").status_code == 200


def test_limit_error_names_the_cap(client: httpx.Client) -> None:
    """A 422 for a limit says which cap was exceeded."""
    detail = client.post("/v1/runs", json={"code": "pass", "limits": {"memory_bytes": 2**34}}).json()[
        "detail"
    ]
    assert "memory_bytes" in detail
    assert "caps" in detail


def test_oversized_batch_is_rejected(client: httpx.Client) -> None:
    """A batch over the policy's max_runs is a 422 naming batch.max_runs."""
    response = client.post("/v1/runs/batch", json={"runs": [{"code": "pass"}] * 1025})
    assert response.status_code == 422
    assert "batch.max_runs" in response.json()["detail"]


def test_empty_batch_is_rejected(client: httpx.Client) -> None:
    """An empty batch is a validation error, not a no-op."""
    assert client.post("/v1/runs/batch", json={"runs": []}).status_code == 422


def test_children_inherit_no_seccomp_compiler_modules(client: httpx.Client) -> None:
    """The fork-server compiles its seccomp filter in a throwaway process (syscalls.compile_filter_apart):
    pyseccomp and what it imports (typing, shutil, subprocess, ctypes.util...) never enter the heap that
    every child inherits, and copies on fork and tears down on exit."""
    code = (
        "import sys\n"
        "print(sorted(m for m in ('pyseccomp', 'typing', 'shutil', 'subprocess', 'ctypes.util', 'tempfile')"
        " if m in sys.modules))"
    )
    for policy in ("default", "pooled"):
        body = client.post("/v1/runs", json={"code": code, "policy": policy}).json()
        assert body["status"] == "ok", body
        assert body["stdout"] == "[]\n", body["stdout"]
    numpy = client.post("/v1/runs", json={"code": "import numpy\n" + code}).json()  # the heavy zygote's
    assert numpy["status"] == "ok", numpy
    assert "pyseccomp" not in numpy["stdout"], numpy["stdout"]


def test_health_and_readiness(client: httpx.Client) -> None:
    """healthz is up, readyz reports every pool warm, metrics expose run counters."""
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["ready"] is True
    assert set(ready["pools"]) >= {"default", "pooled"}
    # Earlier tests may have drained the pool (ready all the same): it refills to its target and then
    # reports nothing starting, which is what bench/_common.wait_quiet waits for.

    def quiet() -> bool:
        default = client.get("/readyz").json()["pools"]["default"]
        return bool(default["warm"] >= default["target"] >= 1 and default["starting"] == 0)

    settle(quiet)
    client.post("/v1/runs", json={"code": "pass"})
    metrics = client.get("/metrics").text
    assert 'sandboxd_runs_total{policy="default",status="ok"}' in metrics
    assert "sandboxd_pool_containers" in metrics


def test_openapi_docs_are_served(client: httpx.Client) -> None:
    """The API is documented at /docs and /openapi.json."""
    assert client.get("/docs").status_code == 200
    assert "/v1/runs/batch" in client.get("/openapi.json").json()["paths"]
