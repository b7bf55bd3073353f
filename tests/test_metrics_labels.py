"""Metric label values stay within fixed sets whatever clients send (bounded cardinality)."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from sandboxd.api.app import create_app
from sandboxd.settings import Settings
from sandboxd.testing import FakeBackend
from sandboxd.verdict import Status


async def _hostile_traffic(app: object) -> list[str]:
    sent: list[str] = []
    service = app.state.service  # type: ignore[attr-defined]
    await service.start()
    try:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            for _ in range(20):
                junk = uuid.uuid4().hex
                sent.append(junk)
                await client.get(f"/v1/runs/{junk}")
                await client.get(f"/{junk}/metrics")
                await client.post("/v1/runs", json={"code": "pass", "policy": junk})
                await client.post("/v1/runs", json={"code": "pass", "metadata": {"run_id": junk}})
                await client.post("/v1/runs/batch", json={"runs": [{"code": "pass"}], "policy": f"x{junk}"})
                await client.request("DELETE", "/v1/runs", headers={"x-request-id": junk})
    finally:
        await service.stop()
    return sent


def test_label_values_come_from_fixed_sets() -> None:
    """Random paths, policy names, run ids and request ids never become label values."""
    app = create_app(Settings(instance="labels-test", image="fake:latest"), backend=FakeBackend())
    sent = asyncio.run(_hostile_traffic(app))
    routes = set(app.openapi()["paths"]) | {"/metrics", "unmatched"}  # /metrics: maybe not in the schema
    allowed = {
        "route": routes,
        "policy": set(app.state.service.policies),
        "status": {status.value for status in Status},
        "state": {"starting", "warm", "leased", "retiring", "dead"},
    }
    seen: dict[str, set[str]] = {}
    for family in app.state.service.metrics.registry.collect():
        for sample in family.samples:
            for label, value in sample.labels.items():
                seen.setdefault(label, set()).add(value)
    for label, values in allowed.items():
        assert seen.get(label, set()) <= values, label
    assert seen["route"] >= {"/v1/runs", "unmatched"}  # the traffic was counted at all
    assert seen["status"] == {"ok"}  # and the runs with a real policy ran
    assert all(code.isdigit() and len(code) == 3 for code in seen["code"])
    every_value = {value for values in seen.values() for value in values}
    assert not [junk for junk in sent if any(junk in value for value in every_value)]
