"""Request ids, HTTP metrics by route template, JSON logs and bounded admission, on the real app."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx

from sandboxd.api.app import create_app
from sandboxd.logs import JsonFormatter, request_id
from sandboxd.settings import Settings
from sandboxd.testing import FakeBackend


async def _get(app: object, path: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        return await client.get(path, headers=headers)


def test_request_id_is_echoed_or_minted() -> None:
    """A safe X-Request-ID is echoed back; an unsafe one is replaced by a fresh id."""
    app = create_app(Settings(instance="obs-test", image="fake:latest"), backend=FakeBackend())
    given = asyncio.run(_get(app, "/healthz", **{"x-request-id": "trainer-42"}))
    assert given.headers["x-request-id"] == "trainer-42"
    minted = asyncio.run(_get(app, "/healthz", **{"x-request-id": "bad id\nwith newline"}))
    assert minted.headers["x-request-id"] != "bad id\nwith newline"
    assert len(minted.headers["x-request-id"]) == 32


def test_http_metrics_use_route_templates() -> None:
    """Requests are counted by route template and code; unknown paths share one label."""
    app = create_app(Settings(instance="obs-test", image="fake:latest"), backend=FakeBackend())
    asyncio.run(_get(app, "/healthz"))
    asyncio.run(_get(app, "/no/such/path/12345"))
    registry = app.state.service.metrics.registry
    assert (
        registry.get_sample_value("sandboxd_http_requests_total", {"route": "/healthz", "code": "200"}) == 1.0
    )
    assert (
        registry.get_sample_value("sandboxd_http_requests_total", {"route": "unmatched", "code": "404"})
        == 1.0
    )


def test_json_log_lines_carry_the_request_id() -> None:
    """Each log line is one JSON object with the current request id."""
    token = request_id.set("abc123")
    try:
        record = logging.LogRecord(
            "sandboxd.test", logging.WARNING, __file__, 1, "pool %s slow", ("default",), None
        )
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert line["message"] == "pool default slow"
    assert line["request_id"] == "abc123"
    assert line["level"] == "warning"
