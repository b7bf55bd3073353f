"""The induction hard-coding detector in the ``/v1/azr/check`` path (DESIGN.md §4 step 6).

For each induction answer that matched its pairs and came with the proposer's ``reference_program``:
inputs are generated on the trusted side from the types of the shown inputs
(:mod:`sandboxd.watchdog.induction`); the reference and the answer each run on them **inside the
sandbox**, through the normal execution path (the reference in a container that never runs an answer, like
expected outputs); their values are compared here with the same equality rules as the check. A
disagreement is a finding in the policy's ``induction_mode`` (``enforce``: veto) with the counterexample
as evidence. Agreement is an ``audit`` finding that says "no counterexample found": a search, not a proof.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from sandboxd.azr.equality import equal
from sandboxd.azr.outcomes import CallOutcome, call_outcomes, failure_reason
from sandboxd.azr.schemas import Answer, CheckResult
from sandboxd.azr.texts import TextRejected, check_program, parse_import_list
from sandboxd.policy import SandboxPolicy
from sandboxd.run import RunResult, RunSpec
from sandboxd.service import Service
from sandboxd.watchdog.decision import Decision, Finding, decide, program_finding
from sandboxd.watchdog.induction import PACK, RULE_ID, example_arguments, generate
from sandboxd.watchdog.rules import Mode


@dataclass(frozen=True)
class Probe:
    """One answer under test: the generated argument texts and the two jobs to run on them."""

    index: int
    texts: list[str]
    reference: RunSpec
    answer: RunSpec


def _finding(mode: Mode, message: str, evidence: str = "") -> Finding:
    return program_finding(RULE_ID, PACK, mode, message, evidence)


def eligible(answer: Answer, correct: bool) -> bool:
    return answer.task_type == "induction" and correct and answer.reference_program is not None


def plan_probe(index: int, answer: Answer, policy: SandboxPolicy) -> Probe | Decision:
    """The probe for one eligible answer, or an ``audit`` decision saying why there is none."""
    options = policy.watchdog
    reference = answer.reference_program or ""
    try:
        check_program(reference)
    except TextRejected as exc:
        return decide([_finding("audit", f"not checked: the reference program is rejected ({exc})")])
    examples = example_arguments(answer.inputs)
    if examples is None:
        return decide([_finding("audit", "not checked: the inputs are not plain literal arguments")])
    try:
        texts = generate(examples, options.induction_samples)
    except Exception as exc:  # a Hypothesis error on odd examples must not fail the request
        return decide([_finding("audit", f"not checked: input generation failed ({type(exc).__name__})")])
    if not texts:
        return decide([_finding("audit", "not checked: no new inputs could be generated from the examples")])
    limits = policy.limits.within(options.induction_budget_seconds)
    imports = parse_import_list(answer.imports)

    def job(program: str) -> RunSpec:
        return RunSpec(
            job={"kind": "calls", "imports": imports, "program": program, "calls": texts}, limits=limits
        )

    return Probe(index, texts, job(reference), job(answer.answer))


async def detect(
    service: Service, policy: SandboxPolicy, isolated: SandboxPolicy, probes: list[Probe]
) -> list[Decision]:
    """Run every probe's two jobs (references under ``isolated``), then judge each pair."""
    if not probes:
        return []
    references, answers = await asyncio.gather(
        service.run(isolated, [p.reference for p in probes]),
        service.run(policy, [p.answer for p in probes]),
    )
    mode = policy.watchdog.induction_mode
    return [
        decide([judge_pair(p.texts, ref, got, mode)])
        for p, ref, got in zip(probes, references, answers, strict=True)
    ]


def judge_pair(texts: list[str], reference: RunResult, answer: RunResult, mode: Mode) -> Finding:
    """The finding for one answer: the first counterexample, or "no counterexample found"."""
    failed = failure_reason(reference)
    wanted = call_outcomes(reference, len(texts)) if failed is None else failed
    if isinstance(wanted, tuple):
        return _finding(
            "audit", f"not checked: the reference program failed on generated inputs ({wanted[0]})"
        )
    failed = failure_reason(answer)
    got = call_outcomes(answer, len(texts)) if failed is None else failed
    valid = [i for i, w in enumerate(wanted) if w.ok]
    if isinstance(got, tuple):
        if not valid:
            return _finding("audit", "not checked: the reference raised on every generated input")
        first = texts[valid[0]]
        return _finding(
            mode,
            f"the answer's run failed ({got[0]}) on generated inputs the reference program handles",
            f"f({first}) = {_shown(wanted[valid[0]])} (reference)",
        )
    for i in valid:
        if not _same(wanted[i], got[i]):
            return _finding(
                mode,
                "the answer disagrees with the reference program on a generated input: it may only "
                "memorise the shown pairs",
                f"f({texts[i]}): reference {_shown(wanted[i])}, answer {_shown(got[i])}",
            )
    return _finding("audit", f"no counterexample found in {len(valid)} generated inputs")


def _same(want: CallOutcome, got: CallOutcome) -> bool:
    if not got.ok:
        return False
    if want.canonical and got.canonical:
        return equal(got.value, want.value)
    return want.repr_text is not None and got.repr_text == want.repr_text


def _shown(outcome: CallOutcome) -> str:
    if not outcome.ok:
        return f"raised {outcome.error}"
    text = outcome.repr_text if outcome.repr_text is not None else "<no repr>"
    return f"returned {text[:200]}"


async def screen(
    service: Service,
    policy: SandboxPolicy,
    isolated: Callable[[], SandboxPolicy],
    answers: list[Answer],
    results: list[CheckResult],
) -> list[Decision | None]:
    """The detector's decision for each answer (None where it does not apply or the watchdog is off)."""
    if policy.watchdog.induction_samples == 0:
        return [None] * len(answers)
    return await screen_eligible(
        service,
        policy,
        answers,
        results,
        plan=plan_probe,
        judge=lambda probes: detect(service, policy, isolated(), probes),
    )


class _Indexed(Protocol):
    @property
    def index(self) -> int:  # the answer's position in the request
        ...


P = TypeVar("P", bound=_Indexed)


async def screen_eligible(
    service: Service,
    policy: SandboxPolicy,
    answers: list[Answer],
    results: list[CheckResult],
    *,
    plan: Callable[[int, Answer, SandboxPolicy], P | Decision],
    judge: Callable[[list[P]], Awaitable[list[Decision]]],
) -> list[Decision | None]:
    """One decision per answer from a semantic check of correct induction answers (this detector's, or
    the formal check's): ``plan`` each eligible answer into a probe or a decision on the spot, ``judge``
    every probe at once, and count every decision. None where the check does not apply or the watchdog
    is off for ``policy``.
    """
    out: list[Decision | None] = [None] * len(answers)
    if service.watchdog_packs.get(policy.name) is None:
        return out
    probes: list[P] = []
    for index, (answer, result) in enumerate(zip(answers, results, strict=True)):
        if eligible(answer, result.correct):
            planned = plan(index, answer, policy)
            if isinstance(planned, Decision):
                out[index] = planned
            else:
                probes.append(planned)
    decided = await judge(probes) if probes else []
    for probe, decision in zip(probes, decided, strict=True):
        out[probe.index] = decision
    for found in out:
        service.after_run(policy, found)
    return out
