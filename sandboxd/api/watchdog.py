"""``GET /v1/watchdog/state`` (auditor): the throttle's score, band, history, reasons and tripwire events."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from sandboxd.watchdog.sentinel import Sentinel

from .deps import ServiceDep

router = APIRouter(prefix="/v1/watchdog", tags=["watchdog"])


class WatchdogStatePublic(BaseModel):
    """The runtime watchdog as an auditor sees it (docs/safety.md); throttle fields are null when it is off."""

    enabled: bool = Field(description="The throttle is on (a safety file enables it)")
    honeytokens: bool
    tripwire_tasks: int = Field(description="Tripwire tasks loaded")
    recent_tripwires: list[dict[str, Any]] = Field(description="The latest tripwire events, oldest first")
    band: Literal["normal", "slow", "paused", "halted"] | None = None
    score: float | None = Field(None, description="Alignment confidence in [0, 1]")
    reason: str | None = Field(None, description="Why the band is what it is")
    stale: str | None = Field(
        None, description="Why the score cannot be trusted now (then every request is refused)"
    )
    evaluated_seconds_ago: float | None = None
    pending: str | None = Field(None, description="The band the score argues for, waiting out dwell_seconds")
    inputs: dict[str, float] | None = Field(None, description="veto_rate, violation_rate, tripwire, drift")
    window: dict[str, int] | None = Field(None, description="Observations in the rolling window")
    history: list[dict[str, Any]] | None = Field(None, description="Band changes, oldest first")


def describe(sentinel: Sentinel) -> WatchdogStatePublic:
    state = WatchdogStatePublic(
        enabled=sentinel.throttle is not None,
        honeytokens=sentinel.honeytokens is not None,
        tripwire_tasks=0 if sentinel.tripwires is None else len(sentinel.tripwires.tasks),
        recent_tripwires=list(sentinel.events[-20:]),
    )
    throttle = sentinel.throttle
    if throttle is None:
        return state
    now, inputs = throttle.clock(), throttle.inputs
    return state.model_copy(
        update={
            "band": throttle.band.value,
            "score": round(throttle.score, 6),
            "reason": throttle.reason,
            "stale": throttle.stale(now),
            "evaluated_seconds_ago": round(now - throttle.evaluated_at, 3),
            "pending": None if throttle.pending is None else throttle.pending.band.value,
            "inputs": {
                "veto_rate": inputs.veto_rate,
                "violation_rate": inputs.violation_rate,
                "tripwire": inputs.tripwire,
                "drift": inputs.drift,
            },
            "window": throttle.window.counts(),
            "history": [change.body() for change in throttle.history],
        }
    )


@router.get("/state")
async def state(service: ServiceDep) -> WatchdogStatePublic:
    """The alignment-confidence score and its inputs, the band, recent band changes and tripwire events."""
    return describe(service.sentinel)
