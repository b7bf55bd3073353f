"""``POST /run_code``: SandboxFusion's API on top of sandboxd, for verl and other existing clients.

Pipeline: language and feature checks (no container touched) → SandboxFusion limits translated to
the default policy's limits, clamped to its caps → the same validation and run as ``/v1/runs`` →
the sandboxd verdict mapped to SandboxFusion's statuses. The mapping table is in
docs/sandboxfusion.md; the decisions are the pure functions below.
"""

from __future__ import annotations

import signal

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from sandboxd.exceptions import PoolExhausted, SandboxFault, Unavailable
from sandboxd.limits import LimitsRequest
from sandboxd.policy import SandboxPolicy
from sandboxd.run import RunResult
from sandboxd.verdict import Status
from sandboxd.watchdog.decision import Decision, DecisionKind
from sandboxd.watchdog.wiring import vetoed_detail

from . import records
from .deps import ServiceDep
from .fusion_schemas import (
    PYTHON_LANGUAGES,
    CommandRunResult,
    CommandRunStatus,
    RunCodeRequest,
    RunCodeResponse,
    RunStatus,
)
from .runs import to_public, to_spec, vetoed_public
from .schemas import Problem, RunSpecIn

router = APIRouter(prefix="/run_code", tags=["sandboxfusion"])
MiB = 1024 * 1024
_MIN_MEMORY_BYTES = 16 * MiB  # LimitsRequest's floor for memory_bytes
_KILLED = frozenset({Status.MEMORY_LIMIT, Status.OUTPUT_LIMIT})  # outcomes the kernel ends with SIGKILL


def refusal(body: RunCodeRequest) -> str | None:
    """Why sandboxd cannot run this request at all, or None."""
    if body.language not in PYTHON_LANGUAGES:
        return f"language {body.language!r} is not supported by sandboxd: only python (or python3) runs here"
    if any(content is not None for content in body.files.values()):
        return (
            "files is not supported by sandboxd: programs run without a writable filesystem; "
            "embed small inputs in the code or pass them on stdin"
        )
    return None


def fusion_limits(body: RunCodeRequest, policy: SandboxPolicy) -> tuple[LimitsRequest, list[str]]:
    """SandboxFusion's run_timeout and memory_limit_MB as sandboxd limits, clamped to the policy's caps."""
    caps, notes = policy.caps, []
    wall = min(body.run_timeout, caps.wall_time_seconds)
    cpu = min(body.run_timeout, caps.cpu_time_seconds)
    if (wall, cpu) != (body.run_timeout, body.run_timeout):
        notes.append(
            f"run_timeout={body.run_timeout:g} clamped to the caps of policy {policy.name} "
            f"(wall_time_seconds={wall:g}, cpu_time_seconds={cpu:g})"
        )
    memory = None
    if body.memory_limit_MB > 0:
        asked = body.memory_limit_MB * MiB
        memory = min(max(asked, _MIN_MEMORY_BYTES), caps.memory_bytes)
        if memory != asked:
            notes.append(f"memory_limit_MB={body.memory_limit_MB} clamped to {memory // MiB} MB")
    return LimitsRequest(wall_time_seconds=wall, cpu_time_seconds=cpu, memory_bytes=memory), notes


def return_code(result: RunResult) -> int:
    """The code a shell would report: minus the signal if killed, and never 0 for a failed run."""
    if result.signal is not None:
        return -result.signal
    if result.exit_code:
        return result.exit_code
    if result.status is Status.OK:
        return 0
    return -signal.SIGKILL if result.status in _KILLED else 1


def to_fusion(result: RunResult, notes: list[str]) -> RunCodeResponse:
    """Map one sandboxd result to SandboxFusion's response (the table in docs/sandboxfusion.md)."""
    if result.status in (Status.INTERNAL_ERROR, Status.INFRASTRUCTURE_ERROR):
        status, run_status, code = RunStatus.SANDBOX_ERROR, CommandRunStatus.ERROR, None
        notes = [result.detail or f"sandboxd {result.status.value}", *notes]
    elif result.status is Status.TIMEOUT:
        status, run_status, code = RunStatus.FAILED, CommandRunStatus.TIME_LIMIT_EXCEEDED, None
    else:
        code = return_code(result)
        status = RunStatus.SUCCESS if result.status is Status.OK else RunStatus.FAILED
        run_status = CommandRunStatus.FINISHED
    return RunCodeResponse(
        status=status,
        message="; ".join(notes),
        run_result=CommandRunResult(
            status=run_status,
            execution_time=result.wall_time_seconds,
            return_code=code,
            stdout=result.stdout,
            stderr=result.stderr,
        ),
        executor_pod_name=result.sandbox_id or None,
        sandboxd_status=result.status.value,
    )


def vetoed_fusion(decision: Decision, notes: list[str]) -> RunCodeResponse:
    """A program the static watchdog vetoed: ``Failed``, never run, ``sandboxd_status`` ``vetoed``."""
    return RunCodeResponse(
        status=RunStatus.FAILED,
        message="; ".join([vetoed_detail(decision), *notes]),
        run_result=CommandRunResult(
            status=CommandRunStatus.FINISHED, execution_time=0.0, return_code=1, stdout="", stderr=""
        ),
        sandboxd_status=Status.VETOED.value,
    )


def _unavailable(exc: Unavailable) -> JSONResponse:
    """504 for pool exhaustion (verl retries only 504s), 503 when isolation is down; both retryable."""
    body = RunCodeResponse(status=RunStatus.SANDBOX_ERROR, message=str(exc))
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=504 if isinstance(exc, PoolExhausted) else 503,
        headers={"Retry-After": str(max(1, round(exc.retry_after_seconds)))},
    )


@router.post(
    "",
    response_model=RunCodeResponse,
    responses={
        413: {"model": Problem},
        422: {"model": Problem},
        503: {"model": RunCodeResponse, "description": "Isolation unavailable; retry later"},
        504: {"model": RunCodeResponse, "description": "No free sandbox in time; retry later"},
    },
)
async def run_code(body: RunCodeRequest, service: ServiceDep) -> RunCodeResponse | JSONResponse:
    """Run one python program, SandboxFusion-style: ``Success``, ``Failed`` or ``SandboxError``."""
    reason = refusal(body)
    if reason is not None:
        return RunCodeResponse(status=RunStatus.SANDBOX_ERROR, message=reason)
    policy = service.policy(None)
    limits, notes = fusion_limits(body, policy)
    if body.fetch_files:
        notes.append("fetch_files is not supported by sandboxd: programs cannot write files")
    run = RunSpecIn(code=body.code, stdin=body.stdin or "", limits=limits)
    spec = to_spec(run, policy)
    decision = service.screen(policy, body.code, "proposer")  # DESIGN.md §4 step 3, as /v1/runs
    if decision is not None and decision.decision is DecisionKind.VETO:
        try:
            await service.ledger.append(
                [records.verdict("/run_code", run, vetoed_public(decision, policy.name))]
            )
        except Unavailable as exc:
            return _unavailable(exc)
        return vetoed_fusion(decision, notes)
    try:
        [result] = await service.run(policy, [spec])
        await service.ledger.append(
            [records.verdict("/run_code", run, to_public(result, policy.name, decision))]
        )
    except Unavailable as exc:  # includes LedgerUnavailable: an unrecorded result is never returned
        return _unavailable(exc)
    except SandboxFault as exc:
        return RunCodeResponse(status=RunStatus.SANDBOX_ERROR, message=str(exc))
    if decision is not None and decision.findings:
        rules = ", ".join(sorted({finding.rule_id for finding in decision.findings}))
        notes.append(f"watchdog {decision.decision.value}: {rules}")
    return to_fusion(result, notes)
