"""``validate``: is a proposed task well-formed, deterministic and canonical? (Pipeline, per task.)

Steps: trusted-side text checks (no container) → one ``calls`` run per task, ``f(input)`` twice
in one fresh process → determinism and canonicality judged on the trusted side.
"""

from __future__ import annotations

from typing import Any

from sandboxd.azr import probes
from sandboxd.azr.memo import TextMemo
from sandboxd.azr.outcomes import CallOutcome, call_outcomes, failure_reason, usage
from sandboxd.azr.planning import planned_runs
from sandboxd.azr.schemas import ProposedTask, Reason, Usage, ValidateRequest, ValidateResult
from sandboxd.azr.texts import TextRejected, check_arguments, check_imports, check_program, parse_import_list
from sandboxd.policy import SandboxPolicy
from sandboxd.run import RunResult, RunSpec
from sandboxd.service import Service
from sandboxd.watchdog.decision import Decision, DecisionKind, combine
from sandboxd.watchdog.wiring import report, vetoed_detail

AZR_TRUNCATE_CHARS = 400


def azr_truncate(text: str) -> str:
    """AZR's truncation of long outputs: the first 200 characters, ``...``, the last 200."""
    if len(text) <= AZR_TRUNCATE_CHARS:
        return text
    half = AZR_TRUNCATE_CHARS // 2
    return text[:half] + "..." + text[-half:]


def _rejected(reason: Reason, detail: str | None, count: int, spent: Usage | None = None) -> ValidateResult:
    return ValidateResult(
        valid=False,
        reason=reason,
        outputs=[None] * count,
        values=[None] * count,
        detail=detail,
        usage=spent or Usage(),
    )


def screened_text(imports: list[str] | str, text: str) -> str:
    """What the static watchdog reads: the import lines (they run in the same process), then ``text``.

    Finding line numbers count the import lines first. Unparseable imports are left out (the text
    checks reject them anyway).
    """
    try:
        lines = parse_import_list(imports)
    except TextRejected:
        lines = []
    return "\n".join([*lines, text])


def is_veto(decision: Decision) -> bool:
    return decision.decision == DecisionKind.VETO


def prepare(task: ProposedTask, policy: SandboxPolicy, memo: TextMemo) -> list[RunSpec] | ValidateResult:
    """Check the task's texts (each once per request: ``memo``); return the run to make, or the rejection."""
    count = len(task.inputs)
    single = task.task_type in ("deduction", "abduction")
    if (single and count != 1) or count > policy.azr.max_inputs:
        most = 1 if single else policy.azr.max_inputs
        return _rejected(
            Reason.BAD_ARGUMENTS, f"{task.task_type} takes at most {most} input(s), got {count}", count
        )
    try:
        imports = parse_import_list(task.imports)
        check_imports(imports)
    except TextRejected as exc:
        return _rejected(Reason.SYNTAX_ERROR, str(exc), count)
    try:
        memo.check(check_program, task.program)
    except TextRejected as exc:
        return _rejected(Reason.SYNTAX_ERROR, str(exc), count)
    for index, text in enumerate(task.inputs):
        try:
            memo.check(check_arguments, text)
        except TextRejected as exc:
            return _rejected(Reason.BAD_ARGUMENTS, f"inputs[{index}]: {exc}", count)
    job: dict[str, Any] = {
        "kind": "calls",
        "imports": imports,
        "program": task.program,
        "calls": list(task.inputs),
        "repeat": 2,
    }
    seeded = [
        RunSpec(job={**job, "repeat": 1, "hash_seed": seed}, limits=policy.limits)
        for seed in policy.azr.hash_seeds
    ]
    shape = probes.shape(task.inputs[0]) if task.inputs and policy.azr.probe_inputs else None
    if shape is not None:  # after the validation's frame, in the same child (docs/azr.md)
        job = {**job, "probes": probes.probe_texts(shape, policy.azr.probe_inputs)}
    return [RunSpec(job=job, limits=policy.limits), *seeded]


def output_signature(task: ProposedTask, run: RunResult) -> str | None:
    """The signature of the probes that ran with the validation (``probes.signature``), or ``None``."""
    shape = probes.shape(task.inputs[0]) if task.inputs else None
    if shape is None or run.probes is None:
        return None
    return probes.signature(shape, run.probes)


def judge(runs: list[RunResult], count: int, request: ValidateRequest) -> ValidateResult:
    """Turn a run of ``count`` inputs (each called twice), plus any hash-seed runs, into a result."""
    result = runs[0]
    spent = usage(result)
    failed = failure_reason(result)
    if failed is not None:
        rejected = _rejected(failed[0], failed[1], count, spent)
        rejected.error_type = result.frame.exc_type if result.frame is not None else None
        return rejected
    outcomes = call_outcomes(result, 2 * count)
    if isinstance(outcomes, tuple):
        return _rejected(outcomes[0], outcomes[1], count, spent)
    for seeded in runs[1:]:
        other = call_outcomes(seeded, count) if failure_reason(seeded) is None else None
        if not isinstance(other, list):
            return _rejected(Reason.NONDETERMINISTIC, "a run under another hash seed failed", count, spent)
        for index, outcome in enumerate(other):
            first = outcomes[2 * index]
            if outcome.tagged != first.tagged or outcome.repr_text != first.repr_text:
                return _rejected(
                    Reason.NONDETERMINISTIC, f"inputs[{index}]: output depends on the hash seed", count, spent
                )
    outputs: list[str | None] = []
    values: list[Any] = []
    for index in range(count):
        first, second = outcomes[2 * index], outcomes[2 * index + 1]
        verdict = _pair_verdict(first, second, index)
        if verdict is not None:
            rejected = _rejected(verdict[0], verdict[1], count, spent)
            rejected.error_type = first.error or second.error
            return rejected
        if not first.canonical and not request.allow_non_canonical:
            return _rejected(
                Reason.NON_CANONICAL_OUTPUT, f"inputs[{index}]: output is not canonical", count, spent
            )
        text = first.repr_text or ""
        outputs.append(azr_truncate(text) if request.truncate_outputs else text)
        values.append(first.tagged if first.canonical else None)
    return ValidateResult(valid=True, reason=Reason.OK, outputs=outputs, values=values, usage=spent)


def _pair_verdict(first: CallOutcome, second: CallOutcome, index: int) -> tuple[Reason, str] | None:
    if not first.ok or not second.ok:
        error = first.error or second.error
        reason = Reason.MEMORY_LIMIT if error == "MemoryError" else Reason.RUNTIME_ERROR
        return reason, f"inputs[{index}]: f raised {error}"
    if first.repr_text is None:
        return Reason.NON_CANONICAL_OUTPUT, f"inputs[{index}]: the output has no repr"
    if first.tagged != second.tagged or first.repr_text != second.repr_text:
        return Reason.NONDETERMINISTIC, f"inputs[{index}]: two calls gave different outputs"
    return None


async def validate(service: Service, policy: SandboxPolicy, request: ValidateRequest) -> list[ValidateResult]:
    memo = TextMemo(service.texts)
    decisions: list[Decision | None] = []

    def prepared(task: ProposedTask) -> list[RunSpec] | ValidateResult:
        decision = service.screen(
            policy, screened_text(task.imports, task.program), "proposer", task.task_type
        )
        decisions.append(decision)
        if decision is not None and is_veto(decision):
            return _rejected(Reason.VETOED, vetoed_detail(decision), len(task.inputs))
        return prepare(task, policy, memo)

    def specs_of(item: list[RunSpec] | ValidateResult) -> list[RunSpec]:
        return item if isinstance(item, list) else []

    def judged(index: int, _item: object, runs: list[RunResult]) -> ValidateResult:
        task = request.tasks[index]
        result = judge(runs, len(task.inputs), request)
        if result.valid:  # a task that fails validation gets no signature
            result.output_signature = output_signature(task, runs[0])
        # Post-execution checks (DESIGN.md §4 step 6) on each of the task's runs.
        source = screened_text(task.imports, task.program)
        after = [service.screen_outcome(policy, run, "proposer", task.task_type, source) for run in runs]
        decisions[index] = combine(decisions[index], *after)
        return result

    bound = len(request.tasks) * (1 + len(policy.azr.hash_seeds))
    planned = await planned_runs(
        service, policy, request.tasks, prepared, specs_of, bound=bound, judge=judged
    )
    final = [
        item
        if isinstance(item, ValidateResult)
        else done
        if done is not None
        else judged(index, item, planned.runs[index])
        for index, (item, done) in enumerate(zip(planned.made, planned.judged, strict=True))
    ]
    for result, decision in zip(final, decisions, strict=True):
        result.watchdog = report(decision) if decision is not None else None
        if decision is not None and is_veto(decision) and result.reason != Reason.VETOED:
            result.valid, result.reason, result.detail = False, Reason.VETOED, vetoed_detail(decision)
            result.output_signature = None
    return final
