"""What each endpoint writes to the ledger (DESIGN.md §4 step 7): one entry per task, answer or run.

Bodies have fixed shapes that the scorecard reads (docs/ledger.md, "Entry bodies"); a field that does not
apply is null. The watchdog's decision is embedded in the entry of the program it judged, as
``{"decision", "findings": [{"rule_id", "severity", "mode"}]}``, or null when the watchdog is off.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sandboxd.azr.schemas import Answer, CheckResult, ProposedTask, Usage, ValidateResult
from sandboxd.ledger.entry import Kind
from sandboxd.ledger.store import Item
from sandboxd.logs import request_id
from sandboxd.watchdog.wiring import WatchdogReport

from .schemas import RunPublic, RunSpecIn


def decision_record(report: WatchdogReport | None) -> dict[str, Any] | None:
    """The watchdog decision as the ledger keeps it (messages and evidence stay in the response)."""
    if report is None:
        return None
    return {
        "decision": report.decision,
        "findings": [{"rule_id": f.rule_id, "severity": f.severity, "mode": f.mode} for f in report.findings],
    }


def _usage(usage: Usage) -> dict[str, Any]:
    return usage.model_dump(mode="json")


def task_proposed(task: ProposedTask, result: ValidateResult, policy: str) -> Item:
    """``/v1/azr/validate``: one proposed task and its validation; ``spot_check`` is set by the sampler."""
    return Kind.TASK_PROPOSED, {
        "request_id": request_id.get(),
        "policy": policy,
        "task_type": task.task_type,
        "program": task.program,
        "imports": task.imports,
        "inputs": list(task.inputs),
        "valid": result.valid,
        "reason": result.reason.value,
        "outputs": list(result.outputs),
        "output_signature": result.output_signature,
        "usage": _usage(result.usage),
        "decision": decision_record(result.watchdog),
        "spot_check": False,
    }


def answer_checked(answer: Answer, result: CheckResult, policy: str) -> Item:
    """``/v1/azr/check``: one solver answer and its check; induction adds its hidden ``inputs``/``outputs``.

    ``value_reward`` is the shaped reward as returned (docs/value-reward.md); ``spot_check`` says whether the
    answer was sampled for human review (set by ``sandboxd.api.curation``, docs/reviews.md).
    """
    return Kind.ANSWER_CHECKED, {
        "request_id": request_id.get(),
        "policy": policy,
        "task_type": answer.task_type,
        "program": answer.program,
        "input": answer.input,
        "answer": answer.answer,
        "expected_output": answer.expected_output,
        "inputs": list(answer.inputs) if answer.task_type == "induction" else None,
        "outputs": list(answer.outputs) if answer.task_type == "induction" else None,
        "correct": result.correct,
        "reward": result.reward,
        "reason": result.reason.value,
        "compared_by": result.compared_by,
        "evaluated_in": result.evaluated_in,
        "usage": _usage(result.usage),
        "decision": decision_record(result.watchdog),
        "value_reward": None if result.value_reward is None else result.value_reward.model_dump(mode="json"),
        "spot_check": False,
    }


def verdict(endpoint: str, run: RunSpecIn, public: RunPublic) -> Item:
    """``/v1/runs``, ``/v1/runs/batch`` and ``/run_code``: one raw run and its verdict."""
    return Kind.VERDICT, {
        "request_id": request_id.get(),
        "run_id": public.id,
        "policy": public.policy,
        "endpoint": endpoint,
        "code": run.code,
        "stdin_sha256": hashlib.sha256(run.stdin.encode("utf-8", "surrogatepass")).hexdigest(),
        "metadata": run.metadata or None,
        "status": public.status.value,
        "usage": {
            "wall_time_seconds": public.wall_time_seconds,
            "cpu_time_seconds": public.cpu_time_seconds,
            "peak_memory_bytes": public.peak_memory_bytes,
        },
        "decision": decision_record(public.watchdog),
    }
