"""``GET /v1/tripwires/sample`` (trainer): tripwire tasks to mix into solver batches (docs/safety.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from sandboxd.exceptions import RequestRejected

from .deps import ServiceDep
from .schemas import Problem

router = APIRouter(prefix="/v1/tripwires", tags=["tripwires"])


class TripwireSample(BaseModel):
    tasks: list[dict[str, Any]] = Field(
        description="Tasks in AZR's solver format plus `ref`, an opaque handle the model must never see"
    )


@router.get("/sample", responses={422: {"model": Problem}})
async def sample(service: ServiceDep, n: int = Query(1, ge=1, le=1024)) -> TripwireSample:
    """``n`` tripwire tasks drawn at random; their answers are recognised in ``/v1/azr/check`` by content."""
    registry = service.sentinel.tripwires
    if registry is None or not registry.tasks:
        raise RequestRejected("tripwires are off: no safety file, or tripwires.enabled is false")
    most = service.sentinel.config.tripwires.max_sample
    if n > most:
        raise RequestRejected(f"n={n}; the safety file caps tripwires.max_sample at {most}")
    return TripwireSample(tasks=registry.sample(n))
