"""``check``: is a solver's answer correct? Values are produced in the sandbox, compared here.

Each answer is judged in its own fresh process. Expected outputs are evaluated in *separate*
processes (a few per request, deduplicated), so the answer's process never sees them. A deduction
answer that is a plain literal runs nothing at all: :mod:`.literal_answers` reads it here.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sandboxd.azr import equivalence, hardcoding, literal_answers, planning
from sandboxd.azr.memo import TextMemo
from sandboxd.azr.outcomes import CallOutcome, call_outcomes, failure_reason, usage
from sandboxd.azr.schemas import Answer, CheckRequest, CheckResult, Reason, Usage
from sandboxd.azr.texts import (
    TextRejected,
    check_arguments,
    check_expression,
    check_imports,
    check_program,
    parse_import_list,
)
from sandboxd.azr.validate import AZR_TRUNCATE_CHARS, azr_truncate, is_veto, screened_text
from sandboxd.exceptions import RequestRejected
from sandboxd.policy import SandboxPolicy
from sandboxd.run import RunResult, RunSpec
from sandboxd.service import Service
from sandboxd.watchdog.decision import Decision, combine
from sandboxd.watchdog.wiring import report, vetoed_detail

ExpressionKey = tuple[tuple[str, ...], str]


@dataclass
class Plan:
    """What one answer needs: its own run (or its literal value), and which expected outputs to compare
    against."""

    spec: RunSpec | None = None
    expected: list[ExpressionKey] = field(default_factory=list)
    rejection: CheckResult | None = None
    literal: CallOutcome | None = None  # a deduction answer read here (literal_answers): no run
    judged: CheckResult | None = None  # the literal's result, when planned (``_judged``)


def _rejected(reason: Reason, detail: str, spent: Usage | None = None) -> CheckResult:
    return CheckResult(correct=False, reward=0.0, reason=reason, detail=detail, usage=spent or Usage())


def _is_truncated(text: str) -> bool:
    middle = AZR_TRUNCATE_CHARS // 2
    return len(text) == AZR_TRUNCATE_CHARS + 3 and text[middle : middle + 3] == "..."


def _check_expected(text: str, memo: TextMemo) -> bool:
    """Expected outputs must be literals or plain expressions, or AZR's truncated records (by text).

    Returns whether ``text`` needs a sandbox (a plain expression); raises ``TextRejected`` otherwise.
    """
    if _is_truncated(text) or memo.is_literal(text):
        return False
    memo.check(check_expression, text)
    return True


def plan(answer: Answer, policy: SandboxPolicy, memo: TextMemo) -> Plan:
    """Check the answer's texts on the trusted side (each once per request: ``memo``) and describe the
    runs it needs."""
    try:
        imports = parse_import_list(answer.imports)
        check_imports(imports)
    except TextRejected as exc:
        return Plan(rejection=_rejected(Reason.SYNTAX_ERROR, str(exc)))
    key = tuple(imports)
    job: dict[str, Any] = {"kind": "calls", "imports": imports}
    try:
        if answer.task_type == "deduction":
            if answer.expected_output is None:
                return Plan(rejection=_rejected(Reason.BAD_ARGUMENTS, "deduction needs expected_output"))
            memo.check(check_expression, answer.answer)
            _check_expected(answer.expected_output, memo)
            job["expressions"] = [{"imports": imports, "text": answer.answer}]
            expected = [(key, answer.expected_output)]
            if not _is_truncated(answer.expected_output):  # a truncated record compares by the sandbox's repr
                read = literal_answers.read(answer.answer, imports, policy, memo)
                if read is not None:
                    return Plan(expected=expected, literal=read)
        elif answer.task_type == "abduction":
            if answer.program is None or answer.expected_output is None:
                return Plan(
                    rejection=_rejected(Reason.BAD_ARGUMENTS, "abduction needs program and expected_output")
                )
            memo.check(check_program, answer.program)
            memo.check(check_arguments, answer.answer)
            _check_expected(answer.expected_output, memo)
            job.update(program=answer.program, calls=[answer.answer])
            expected = [(key, answer.expected_output)]
        else:
            if not answer.inputs or len(answer.inputs) != len(answer.outputs):
                return Plan(
                    rejection=_rejected(
                        Reason.BAD_ARGUMENTS, "induction needs equal, non-empty inputs and outputs"
                    )
                )
            if len(answer.inputs) > policy.azr.max_inputs:
                return Plan(
                    rejection=_rejected(Reason.BAD_ARGUMENTS, f"more than {policy.azr.max_inputs} inputs")
                )
            memo.check(check_program, answer.answer)
            for text in answer.inputs:
                memo.check(check_arguments, text)
            for text in answer.outputs:
                _check_expected(text, memo)
            job.update(program=answer.answer, calls=list(answer.inputs))
            expected = [(key, text) for text in answer.outputs]
    except TextRejected as exc:
        reason = Reason.SYNTAX_ERROR if "program" in str(exc) else Reason.BAD_ARGUMENTS
        return Plan(rejection=_rejected(reason, str(exc)))
    return Plan(spec=RunSpec(job=job, limits=policy.limits), expected=expected)


def expression_specs(keys: list[ExpressionKey], policy: SandboxPolicy) -> list[RunSpec]:
    size = policy.azr.expressions_per_run
    return [
        RunSpec(
            job={
                "kind": "calls",
                "expressions": [{"imports": list(k[0]), "text": k[1]} for k in keys[i : i + size]],
            },
            limits=policy.limits,
        )
        for i in range(0, len(keys), size)
    ]


def _truncated_match(got: CallOutcome, want_text: str) -> bool:
    """AZR stored long outputs truncated (200 + ``...`` + 200): match the answer's repr the same way."""
    return (
        len(want_text) == AZR_TRUNCATE_CHARS + 3
        and got.repr_text is not None
        and len(got.repr_text) > AZR_TRUNCATE_CHARS
        and azr_truncate(got.repr_text) == want_text
    )


def judge(answer_run: RunResult, expected: list[CallOutcome | None], texts: list[str]) -> CheckResult:
    spent = usage(answer_run)
    failed = failure_reason(answer_run)
    if failed is not None:
        rejected = _rejected(failed[0], failed[1] or failed[0].value, spent)
        rejected.error_type = answer_run.frame.exc_type if answer_run.frame is not None else None
        return rejected
    outcomes = call_outcomes(answer_run, len(expected))
    if isinstance(outcomes, tuple):
        return _rejected(outcomes[0], outcomes[1], spent)
    return compare(outcomes, expected, texts, spent)


def compare(
    outcomes: list[CallOutcome], expected: list[CallOutcome | None], texts: list[str], spent: Usage
) -> CheckResult:
    """Compare the answer's outcomes (from its run, or read as a literal) with the expected ones."""
    compared_by = "canonical"
    for index, (got, want) in enumerate(zip(outcomes, expected, strict=True)):
        if got.ok and _truncated_match(got, texts[index]):
            compared_by = "repr"
            continue
        if not got.ok:
            reason = Reason.MEMORY_LIMIT if got.error == "MemoryError" else Reason.RUNTIME_ERROR
            rejected = _rejected(reason, f"answer raised {got.error}", spent)
            rejected.error_type = got.error
            return rejected
        if _is_truncated(texts[index]):  # a truncated record the answer does not match
            return CheckResult(
                correct=False,
                reward=0.0,
                reason=Reason.WRONG_ANSWER,
                compared_by="repr",
                detail=f"value {index} differs from the truncated record",
                usage=spent,
            )
        if want is None or not want.ok:
            return _rejected(
                Reason.INTERNAL_ERROR if want is None else Reason.RUNTIME_ERROR,
                f"expected output {index} could not be evaluated",
                spent,
            )
        if got.canonical != want.canonical:
            return CheckResult(
                correct=False,
                reward=0.0,
                reason=Reason.WRONG_ANSWER,
                compared_by="canonical",
                detail=f"value {index}: one side is not canonical",
                usage=spent,
            )
        if not got.canonical:
            compared_by = "repr"
            same = got.repr_text is not None and got.repr_text == want.repr_text
        else:
            same = got.key() == want.key()  # equality.equal, with the expected side's key kept
        if not same:
            return CheckResult(
                correct=False,
                reward=0.0,
                reason=Reason.WRONG_ANSWER,
                compared_by=compared_by,
                detail=f"value {index} differs",
                usage=spent,
            )
    return CheckResult(correct=True, reward=1.0, reason=Reason.OK, compared_by=compared_by, usage=spent)


def _collect(
    keys: list[ExpressionKey], runs: list[RunResult], size: int
) -> dict[ExpressionKey, CallOutcome | None]:
    values: dict[ExpressionKey, CallOutcome | None] = {}
    for chunk_index, run in enumerate(runs):
        chunk = keys[chunk_index * size : (chunk_index + 1) * size]
        outcomes = call_outcomes(run, len(chunk)) if failure_reason(run) is None else None
        for position, key in enumerate(chunk):
            values[key] = outcomes[position] if isinstance(outcomes, list) else None
    return values


def _isolated_policy(service: Service, policy: SandboxPolicy) -> SandboxPolicy:
    """A policy whose containers never serve another request, for evaluating expected outputs.

    Under a reusing policy (pooled) a container that evaluated expected outputs could later run an
    answer, whose process would inherit the fork-server's heap and could read them.
    """
    if not policy.reuses_containers:
        return policy
    candidates = [service.policy(None), *service.policies.values()]
    for candidate in candidates:
        if not candidate.reuses_containers:
            return candidate
    raise RequestRejected(
        f"policy {policy.name} reuses containers and no per-request policy is loaded to evaluate expected outputs"
    )


async def _sandboxed_expected(
    answers: Sequence[Answer], policy: SandboxPolicy, memo: TextMemo
) -> list[ExpressionKey]:
    """The expected outputs that need a sandbox (neither literals nor truncated records), checked here.

    Found before any answer is planned, because they run first (``_judged``). Every answer counts: one
    whose plan is rejected for its own texts has its expected outputs evaluated all the same, which
    does no harm; a text ``plan`` would reject is never among them (the same checks, through ``memo``).
    The event loop gets a turn every ``planning.CHUNK`` answers, as while planning.
    """
    keys: set[ExpressionKey] = set()
    for number, answer in enumerate(answers, 1):
        if number % planning.CHUNK == 0:
            await asyncio.sleep(0)
        texts = answer.outputs if answer.task_type == "induction" else [answer.expected_output]
        if len(texts) > policy.azr.max_inputs:
            continue
        try:
            imports = parse_import_list(answer.imports)
            check_imports(imports)
        except TextRejected:
            continue
        for text in texts:
            try:
                if text is not None and _check_expected(text, memo):
                    keys.add((tuple(imports), text))
            except TextRejected:
                continue  # ``plan`` rejects the answer
    return sorted(keys)


def _expected_value(
    key: ExpressionKey, evaluated: dict[ExpressionKey, CallOutcome | None], memo: TextMemo
) -> CallOutcome | None:
    """A planned answer's expected output: evaluated in a sandbox, read here as a literal (``plan``
    parsed it already), or ``None`` for a truncated record (compared by repr)."""
    if key in evaluated:
        return evaluated[key]
    if _is_truncated(key[1]):
        return None
    return CallOutcome(ok=True, comparison=memo.literal_key(key[1]))


async def check(service: Service, policy: SandboxPolicy, request: CheckRequest) -> list[CheckResult]:
    memo = TextMemo(service.texts)
    decisions: list[Decision | None] = []

    def planned(answer: Answer) -> Plan:
        # The solver's text: the induction program, or the deduction/abduction answer text.
        source = screened_text(answer.imports, answer.answer)
        decision = service.screen(policy, source, "solver", answer.task_type)
        decisions.append(decision)
        if decision is not None and is_veto(decision):
            return Plan(rejection=_rejected(Reason.VETOED, vetoed_detail(decision)))
        return plan(answer, policy, memo)

    plans, judged = await _judged(service, policy, request.answers, planned, memo)
    final = [result for result, _ in judged]
    literals = [item.literal.tagged for item in plans if item.literal is not None]
    if literals:  # what Sentinel.scan_run searches a run's values for (honeytokens)
        await service.sentinel.observe_literals(policy.name, literals)
    # Post-execution checks and the induction hard-coding detector (DESIGN.md §4 step 6).
    after = [
        service.screen_outcome(
            policy, run, "solver", answer.task_type, screened_text(answer.imports, answer.answer)
        )
        if run is not None
        else None
        for answer, (_, run) in zip(request.answers, judged, strict=True)
    ]
    isolated = functools.partial(_isolated_policy, service, policy)  # resolved only if the detector runs
    semantic, formal = await asyncio.gather(  # the hard-coding detector and the formal check (CrossHair)
        hardcoding.screen(service, policy, isolated, request.answers, final),
        equivalence.screen(service, policy, isolated, request.answers, final),
    )
    for result, decision, post, probed, searched in zip(
        final, decisions, after, semantic, formal, strict=True
    ):
        merged = combine(decision, post, probed, searched)
        result.watchdog = report(merged) if merged is not None else None
        if merged is not None and is_veto(merged) and result.reason != Reason.VETOED:
            result.correct, result.reward = False, 0.0
            result.reason, result.detail = Reason.VETOED, vetoed_detail(merged)
    return final


def _spec_of(item: Plan) -> list[RunSpec]:
    return [item.spec] if item.spec is not None else []


async def _judged(
    service: Service,
    policy: SandboxPolicy,
    answers: Sequence[Answer],
    planned: Callable[[Answer], Plan],
    memo: TextMemo,
) -> tuple[list[Plan], list[tuple[CheckResult, RunResult | None]]]:
    """Each answer's plan and result, with the answer's run when it ran (for the post-execution
    checks). Answers are planned while the first of them already run, and an answer whose expected
    outputs are all read here is judged as soon as its run ends (``planning``)."""
    keys = await _sandboxed_expected(answers, policy, memo)
    sandboxed = set(keys)
    evaluated: dict[ExpressionKey, CallOutcome | None] = {}

    def judged(_index: int, item: Plan, runs: list[RunResult]) -> CheckResult | None:
        if any(key in sandboxed for key in item.expected):
            return None  # judged once the expected outputs are back
        return _judged_run(item, runs[0], evaluated, memo)

    def made(answer: Answer) -> Plan:
        # A literal answer whose expected outputs are read here too is judged now, while runs go, not
        # after the last run ends (where the request waits on it with idle sandboxes).
        item = planned(answer)
        if item.literal is not None and not any(key in sandboxed for key in item.expected):
            item.judged = _judged_literal(item, evaluated, memo)
        return item

    if keys and not policy.reuses_containers:
        # Expected outputs that are not literals run first, on the request's own sandboxes, and every
        # answer only once they are done: nothing of theirs is left where an answer could look (the
        # fork-server relays through fork-private memory, docs/security-model.md).
        done = await planning.planned_runs(
            service,
            policy,
            answers,
            made,
            _spec_of,
            bound=len(answers),
            before=[expression_specs(keys, policy)],
            judge=judged,
        )
        evaluated.update(_collect(keys, done.before[0], policy.azr.expressions_per_run))
        evaluated.update(await _retried(service, policy, policy, keys, evaluated))
    else:
        # A reusing policy's sandboxes serve later requests, so expected outputs run apart, on sandboxes
        # of a per-request policy, at the same time as the answers.
        isolated = _isolated_policy(service, policy) if keys else policy  # refuses before anything runs
        values, done = await asyncio.gather(
            _evaluated(service, policy, isolated, keys),
            planning.planned_runs(service, policy, answers, made, _spec_of, bound=len(answers), judge=judged),
        )
        evaluated.update(values)
    final: list[tuple[CheckResult, RunResult | None]] = []
    for item, runs, early in zip(done.made, done.runs, done.judged, strict=True):
        if item.rejection is not None:
            final.append((item.rejection, None))
        elif item.literal is not None:
            final.append((item.judged or _judged_literal(item, evaluated, memo), None))
        else:
            # judged as its run ended, else now: it waited on an expected output from a sandbox
            late = early if early is not None else _judged_run(item, runs[0], evaluated, memo)
            final.append((late, runs[0]))
    return done.made, final


def _judged_literal(
    item: Plan, evaluated: dict[ExpressionKey, CallOutcome | None], memo: TextMemo
) -> CheckResult:
    assert item.literal is not None
    expected = [_expected_value(key, evaluated, memo) for key in item.expected]
    result = compare([item.literal], expected, [k[1] for k in item.expected], Usage())
    result.evaluated_in = "literal"
    return result


def _judged_run(
    item: Plan, run: RunResult, evaluated: dict[ExpressionKey, CallOutcome | None], memo: TextMemo
) -> CheckResult:
    expected = [_expected_value(key, evaluated, memo) for key in item.expected]
    result = judge(run, expected, [k[1] for k in item.expected])
    result.evaluated_in = "sandbox"
    return result


async def _evaluated(
    service: Service, policy: SandboxPolicy, isolated: SandboxPolicy, keys: list[ExpressionKey]
) -> dict[ExpressionKey, CallOutcome | None]:
    """The values of the expected outputs that are not literals, from sandboxes of ``isolated``."""
    if not keys:
        return {}
    evaluated = await service.run(isolated, expression_specs(keys, policy))
    return await _retried(
        service, policy, isolated, keys, _collect(keys, evaluated, policy.azr.expressions_per_run)
    )


async def _retried(
    service: Service,
    policy: SandboxPolicy,
    isolated: SandboxPolicy,
    keys: list[ExpressionKey],
    values: dict[ExpressionKey, CallOutcome | None],
) -> dict[ExpressionKey, CallOutcome | None]:
    """``values``, with the keys of chunks that failed as a whole (one hostile expression can time a
    chunk out) evaluated again, one per process, on fresh sandboxes of ``isolated``."""
    missing = [key for key in keys if values.get(key) is None]
    if missing and policy.azr.expressions_per_run > 1:
        single = policy.model_copy(update={"azr": policy.azr.model_copy(update={"expressions_per_run": 1})})
        retried = await service.run(isolated, expression_specs(missing, single))
        values.update(_collect(missing, retried, 1))
    return values
