"""Hostile-input fuzzing of the HTTP API: no 5xx but documented 503s, and the service stays healthy.

Two generators, both bounded in time (together well under a minute here):

- schemathesis derives requests from the app's own OpenAPI schema, valid and invalid (wrong types,
  missing fields, boundary values), for every operation;
- Hypothesis throws raw bodies at every POST route: malformed and truncated JSON, non-UTF-8 bytes,
  NUL bytes, deep nesting, huge numbers and strings, wrong content types.

The app is served by uvicorn on loopback with the in-memory ``FakeBackend`` (this tests the HTTP layer,
not isolation), so a 500 here is a bug in request handling.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode

from sandboxd.settings import Settings
from sandboxd.testing import FakeBackend, running_server

SCHEMA_EXAMPLES = 300  # per generation mode, spread over every operation
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
)


def allowed(status: int, headers: Any) -> bool:
    """Every answer is below 500, or a documented 503 that says when to retry."""
    return status < 500 or (status == 503 and bool(headers.get("retry-after")))


@pytest.fixture(scope="module")
def url(policies_dir: Path) -> Iterator[str]:
    settings = Settings(instance=f"fuzz-{uuid.uuid4().hex[:8]}", policies_dir=policies_dir)
    with running_server(settings, backend=FakeBackend()) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def api_schema(url: str) -> Any:
    return schemathesis.openapi.from_url(f"{url}/openapi.json")


@pytest.fixture(scope="module")
def post_routes(client: httpx.Client) -> list[str]:
    """Every POST route without path parameters, from the served schema."""
    paths = client.get("/openapi.json").json()["paths"]
    return sorted(path for path, operations in paths.items() if "post" in operations and "{" not in path)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schema_driven_requests_never_5xx(api_schema: Any, url: str, mode: GenerationMode) -> None:
    """Requests generated from the OpenAPI schema (valid and invalid) never get a 5xx but 503 + Retry-After."""
    seen: set[str] = set()
    codes: set[int] = set()

    @given(case=api_schema.as_strategy(mode))
    @settings(FUZZ, max_examples=SCHEMA_EXAMPLES)
    def call(case: Any) -> None:
        seen.add(f"{case.method} {case.path}")
        response = case.call(base_url=url)
        codes.add(response.status_code)
        assert allowed(response.status_code, response.headers), (
            f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
        )

    call()
    print(f"{mode}: {len(seen)} operations, statuses {sorted(codes)}")
    assert {"POST /v1/runs", "POST /v1/runs/batch"} <= seen, sorted(seen)
    assert 200 in codes
    if mode is GenerationMode.NEGATIVE:
        assert 422 in codes  # invalid requests did reach validation


def _nested(depth: int) -> str:
    return '{"code": ' + "[" * depth + "]" * depth + "}"


HOSTILE_BODIES = st.one_of(
    st.binary(max_size=2048),
    st.text(max_size=2048).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=64),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=20,
    ).map(lambda value: json.dumps(value).encode()),
    st.integers(min_value=1, max_value=100_000).map(lambda depth: _nested(depth).encode()),
    st.sampled_from(
        [
            b'{"code": "pass\x00"}',
            b'{"code": "\\u0000"}',
            b'{"code": "\\ud800"}',
            b'{"code": "\xff\xfe\xfd"}',
            b'{"code": 1e999}',
            b'{"code": "pass", "limits": {"wall_time_seconds": 1e309}}',
            b'{"code": "pass", "limits": {"memory_bytes": 99999999999999999999999999999}}',
            b'{"code": "pass", "limits": {"wall_time_seconds": NaN}}',
            b'{"code": "pass", "stdin": ' + b'"' + b"x" * 2_000_000 + b'"}',
            b'{"runs": [' + b",".join([b'{"code": "pass"}'] * 5000) + b"]}",
            b'{"tasks": [' + b",".join([b"{}"] * 5000) + b"]}",
            b'{"code": "pass", "code": 5}',
            b"\x00" * 64,
            b"",
        ]
    ),
)
CONTENT_TYPES = st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""])


@given(body=HOSTILE_BODIES, content_type=CONTENT_TYPES, data=st.data())
@FUZZ
def test_hostile_bodies_never_5xx(
    client: httpx.Client, post_routes: list[str], body: bytes, content_type: str, data: Any
) -> None:
    """Malformed, non-UTF-8, NUL-laden, deep or huge bodies on any POST route get a 4xx, never a 500."""
    path = data.draw(st.sampled_from(post_routes))
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(path, content=body, headers=headers)
    assert allowed(response.status_code, response.headers), (
        f"POST {path} -> {response.status_code}: {response.text[:500]}"
    )


def test_service_is_healthy_after_fuzzing(client: httpx.Client) -> None:
    """After the fuzzing above the service still answers, is ready, and runs code."""
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.post("/v1/runs", json={"code": "pass"}).json()["status"] == "ok"
