"""``/v1/admin`` (admin role): lift a paused or halted throttle, reload policies at run time.

Both are recorded through ``Service.record_event`` *before* they take effect: an action that cannot be
recorded is refused (503), so nothing happens off the record.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from sandboxd.exceptions import ConfigurationError
from sandboxd.reload import Reloader
from sandboxd.watchdog.throttle import Band

from .deps import ServiceDep
from .schemas import Problem
from .watchdog import WatchdogStatePublic, describe

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class ResumeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=10, max_length=2000, description="Why it is safe to resume; recorded")


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=2000, description="Why the policies changed; recorded")


def caller(request: Request) -> str:
    """Who is acting: the token id (the auth layer already checked it), or ``anonymous``."""
    keyring = request.app.state.keyring
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    entry = keyring.authenticate(token) if keyring is not None and scheme.lower() == "bearer" else None
    return f"token:{entry.id}" if entry is not None else "anonymous (authentication off)"


def _conflict(error: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=409)


@router.post(
    "/resume",
    response_model=WatchdogStatePublic,
    responses={409: {"model": Problem}, 503: {"model": Problem}},
)
async def resume(body: ResumeRequest, request: Request, service: ServiceDep) -> Any:
    """Leave ``paused`` or ``halted``: tripwire events so far are acknowledged; the score picks the band."""
    sentinel = service.sentinel
    throttle = sentinel.throttle
    if throttle is None:
        return _conflict("throttle_off", "the throttle is not enabled (docs/safety.md)")
    if throttle.band not in (Band.PAUSED, Band.HALTED):
        return _conflict("not_paused", f"the throttle is {throttle.band.value}; nothing to resume")
    by = caller(request)
    await service.record_event(
        "admin_action", {"action": "resume", "reason": body.reason, "by": by, "band": throttle.band.value}
    )
    await sentinel.resume(body.reason, by)
    return describe(sentinel)


@router.post("/policies/reload", responses={422: {"model": Problem}, 503: {"model": Problem}})
async def reload(request: Request, service: ServiceDep, body: ReloadRequest | None = None) -> Any:
    """Reload sandbox policies, watchdog packs and the safety file; invalid ones change nothing (422)."""
    reloader: Reloader = request.app.state.reloader
    async with reloader.lock:
        try:
            plan = reloader.prepare()
        except ConfigurationError as exc:
            return JSONResponse({"error": "invalid_policy", "detail": str(exc)}, status_code=422)
        record = {**plan.report, "reason": body.reason if body else "", "by": caller(request)}
        await service.record_event("policy_change", record)
        await reloader.apply(plan)
    return record
