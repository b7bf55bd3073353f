"""``/v1/runs``: run untrusted programs and report their verdicts."""

from __future__ import annotations

import json
import uuid

from fastapi import APIRouter

from sandboxd.exceptions import RequestRejected
from sandboxd.policy import SandboxPolicy
from sandboxd.run import RunResult, RunSpec
from sandboxd.service import Service
from sandboxd.verdict import Status
from sandboxd.watchdog.decision import Decision, DecisionKind, combine
from sandboxd.watchdog.wiring import report, vetoed_detail

from . import records
from .deps import ServiceDep
from .schemas import BatchCreate, BatchPublic, Problem, RunCreate, RunPublic, RunSpecIn

router = APIRouter(prefix="/v1/runs", tags=["runs"])
_ERRORS: dict[int | str, dict[str, object]] = {
    413: {"model": Problem},
    422: {"model": Problem},
    503: {"model": Problem},
}


def to_spec(run: RunSpecIn, policy: SandboxPolicy, where: str = "") -> RunSpec:
    """Check one run against the policy's caps; the 422 names the cap that was exceeded."""
    caps = policy.request
    code_bytes = len(run.code.encode("utf-8", "surrogatepass"))
    if code_bytes > caps.code_bytes:
        raise RequestRejected(
            f"{where}code is {code_bytes} bytes; policy {policy.name} caps code_bytes at {caps.code_bytes}"
        )
    stdin_bytes = len(run.stdin.encode("utf-8", "surrogatepass"))
    if stdin_bytes > caps.stdin_bytes:
        raise RequestRejected(
            f"{where}stdin is {stdin_bytes} bytes; policy {policy.name} caps stdin_bytes "
            f"at {caps.stdin_bytes}"
        )
    try:
        metadata_bytes = len(json.dumps(run.metadata, allow_nan=False)) if run.metadata else 0
    except ValueError:
        raise RequestRejected(f"{where}metadata must be JSON without NaN or infinity") from None
    if metadata_bytes > caps.metadata_bytes:
        raise RequestRejected(f"{where}metadata exceeds metadata_bytes={caps.metadata_bytes}")
    limits = run.limits.over(policy.limits)
    exceeded = limits.exceeding(policy.caps)
    if exceeded:
        raise RequestRejected(f"{where}limits above the caps of policy {policy.name}: {', '.join(exceeded)}")
    return RunSpec(job={"kind": "script", "code": run.code}, limits=limits, stdin=run.stdin)


def to_public(result: RunResult, policy: str, decision: Decision | None = None) -> RunPublic:
    """The public form of a run that ran; a post-execution veto turns its status into ``vetoed``."""
    vetoed = decision is not None and decision.decision == DecisionKind.VETO
    return RunPublic(
        id=uuid.uuid4().hex,
        status=Status.VETOED if vetoed else result.status,
        exit_code=result.exit_code,
        signal=result.signal,
        stdout=result.stdout,
        stderr=result.stderr,
        stdout_truncated=result.stdout_truncated,
        stderr_truncated=result.stderr_truncated,
        wall_time_seconds=result.wall_time_seconds,
        cpu_time_seconds=result.cpu_time_seconds,
        peak_memory_bytes=result.peak_memory_bytes,
        sandbox_id=result.sandbox_id,
        policy=policy,
        detail=vetoed_detail(decision) if vetoed and decision is not None else result.detail,
        watchdog=report(decision) if decision is not None else None,
    )


def vetoed_public(decision: Decision, policy: str) -> RunPublic:
    """A run the static watchdog vetoed: it never reached a container."""
    return RunPublic(
        id=uuid.uuid4().hex,
        status=Status.VETOED,
        exit_code=None,
        signal=None,
        stdout="",
        stderr="",
        stdout_truncated=False,
        stderr_truncated=False,
        wall_time_seconds=0.0,
        cpu_time_seconds=0.0,
        peak_memory_bytes=0,
        sandbox_id="",
        policy=policy,
        detail=vetoed_detail(decision),
        watchdog=report(decision),
    )


async def run_screened(
    service: Service, policy: SandboxPolicy, runs: list[RunSpecIn], specs: list[RunSpec]
) -> list[RunPublic]:
    """Screen each run with the static watchdog (role proposer), run the rest, keep the order."""
    decisions = [service.screen(policy, run.code, "proposer") for run in runs]
    vetoed = [d is not None and d.decision == DecisionKind.VETO for d in decisions]
    to_run = [spec for spec, veto in zip(specs, vetoed, strict=True) if not veto]
    results = iter(await service.run(policy, to_run) if to_run else [])
    public: list[RunPublic] = []
    for run, decision, veto in zip(runs, decisions, vetoed, strict=True):
        if veto and decision is not None:
            public.append(vetoed_public(decision, policy.name))
        else:  # post-execution checks (DESIGN.md §4 step 6) may still veto a run that ran
            result = next(results)
            after = service.screen_outcome(policy, result, "proposer", None, run.code)
            public.append(to_public(result, policy.name, combine(decision, after)))
    return public


@router.post("", responses=_ERRORS)
async def create_run(body: RunCreate, service: ServiceDep) -> RunPublic:
    """Run one program in a fresh sandboxed process and return its verdict."""
    policy = service.policy(body.policy)
    spec = to_spec(body, policy)
    [public] = await run_screened(service, policy, [body], [spec])
    await service.ledger.append([records.verdict("/v1/runs", body, public)])
    return public


@router.post("/batch", responses=_ERRORS)
async def create_batch(body: BatchCreate, service: ServiceDep) -> BatchPublic:
    """Run many programs, each in its own fresh process, spread over the CPUs; results keep order."""
    policy = service.policy(body.policy)
    if len(body.runs) > policy.batch.max_runs:
        raise RequestRejected(
            f"batch of {len(body.runs)} runs; policy {policy.name} caps batch.max_runs "
            f"at {policy.batch.max_runs}"
        )
    specs = [to_spec(run, policy, f"runs[{index}]: ") for index, run in enumerate(body.runs)]
    results = await run_screened(service, policy, body.runs, specs)
    await service.ledger.append(
        [
            records.verdict("/v1/runs/batch", run, public)
            for run, public in zip(body.runs, results, strict=True)
        ]
    )
    return BatchPublic(results=results)
