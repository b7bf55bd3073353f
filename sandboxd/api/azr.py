"""``/v1/azr``: AZR task validation and answer checking."""

from __future__ import annotations

from fastapi import APIRouter

from sandboxd.api import curation
from sandboxd.api.deps import ServiceDep
from sandboxd.api.schemas import Problem
from sandboxd.azr import check as checking
from sandboxd.azr import validate as validation
from sandboxd.azr.schemas import CheckRequest, CheckResponse, ValidateRequest, ValidateResponse
from sandboxd.exceptions import RequestRejected

router = APIRouter(prefix="/v1/azr", tags=["azr"])
_ERRORS: dict[int | str, dict[str, object]] = {
    413: {"model": Problem},
    422: {"model": Problem},
    503: {"model": Problem},
}


def _cap(count: int, most: int, what: str) -> None:
    if count > most:
        raise RequestRejected(f"{count} {what}; the policy caps azr.max_tasks at {most}")


@router.post("/validate", responses=_ERRORS)
async def validate(body: ValidateRequest, service: ServiceDep) -> ValidateResponse:
    """Validate proposed tasks: run f on each input twice in a fresh process; outputs as AZR records them."""
    policy = service.policy(body.policy)
    _cap(len(body.tasks), policy.azr.max_tasks, "tasks")
    results = await validation.validate(service, policy, body)
    await curation.proposed(service, policy, body.tasks, results)  # ledger, spot checks (docs/reviews.md)
    return ValidateResponse(results=results)


@router.post("/check", responses=_ERRORS)
async def check(body: CheckRequest, service: ServiceDep) -> CheckResponse:
    """Check solver answers; values come from the sandbox, comparison happens here."""
    policy = service.policy(body.policy)
    _cap(len(body.answers), policy.azr.max_tasks, "answers")
    results = await checking.check(service, policy, body)
    await service.sentinel.observe_answers(body.answers, results)  # tripwire tasks, before anything can fail
    shaped = await curation.checked(service, policy, body.answers, results)  # docs/value-reward.md
    return CheckResponse(results=shaped)
