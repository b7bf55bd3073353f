"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from sandboxd.exposition import render

from .deps import ServiceDep

router = APIRouter(tags=["health"])
metrics_router = APIRouter(tags=["health"])  # separate: SANDBOXD_METRICS_REQUIRE_TOKEN may protect it


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving HTTP."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(service: ServiceDep) -> JSONResponse:
    """Ready when the engine can isolate and every pool has a warm sandbox."""
    state = service.readiness()
    return JSONResponse(state, status_code=200 if state["ready"] else 503)


@metrics_router.get("/metrics")
async def metrics(service: ServiceDep) -> Response:
    """Prometheus exposition (merged over all workers when there are several)."""
    return Response(render(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)
