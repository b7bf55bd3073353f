"""The formal equivalence check in the ``/v1/azr/check`` path (DESIGN.md §4 step 6).

For each induction answer that matched its pairs and came with the proposer's ``reference_program``, when
the policy sets ``watchdog.formal_check``:

1. **Plan** (trusted side, parsing only): both programs must be small and pure and the shown inputs plain
   literals of covered types (``sandboxd/watchdog/equivalence.py``); otherwise an ``audit`` finding says
   why the check did not run.
2. **Search** (inside the sandbox): one ``formal`` job runs CrossHair on the two programs for
   ``formal_budget_seconds`` (``sandboxd/runner/formal.py``), in the request's policy, forked from the
   ``formal`` zygote. It reports **candidate** inputs, never a verdict.
3. **Confirm** (sandbox, then trusted side): both programs run on the candidates as ordinary ``calls`` jobs
   (the reference in a container that never runs an answer) and their values are compared here with the
   check's own equality rules (``hardcoding.judge_pair``). Only a confirmed difference is a finding in
   ``formal_mode`` (``enforce``: veto), with the input and both values as evidence.
4. **Failures** of the search run (timeout, memory, a sandbox violation, a broken report) are attributed:
   the reference is searched against itself; if that runs cleanly the answer is blamed (``formal_mode``,
   fail closed), otherwise the check is inconclusive (``audit``). Nothing here raises into the request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandboxd.azr.hardcoding import screen_eligible
from sandboxd.azr.schemas import Answer, CheckResult
from sandboxd.azr.search_report import Failed, confirm, interpret, read_report
from sandboxd.azr.texts import TextRejected, check_program, parse_import_list
from sandboxd.limits import Limits
from sandboxd.policy import SandboxPolicy
from sandboxd.run import RunResult, RunSpec
from sandboxd.service import Service
from sandboxd.watchdog.decision import Decision, Finding, decide
from sandboxd.watchdog.equivalence import argument_types, finding, impurity
from sandboxd.watchdog.induction import example_arguments
from sandboxd.watchdog.rules import Mode

SEARCH_SHARE = 0.6  # of the budget for CrossHair's search; one path may overrun it by a quarter at most


@dataclass(frozen=True)
class FormalProbe:
    index: int
    imports: list[str]
    reference: str
    answer: str
    types: list[Any]
    limits: Limits
    budget_seconds: float

    def search(self, against_itself: bool = False) -> RunSpec:
        job = {
            "kind": "formal",
            "imports": self.imports,
            "reference": self.reference,
            "program": self.reference if against_itself else self.answer,
            "entry": "f",
            "types": self.types,
            "search_seconds": round(self.budget_seconds * SEARCH_SHARE, 3),
        }
        return RunSpec(job=job, limits=self.limits)

    def calls(self, program: str, texts: list[str]) -> RunSpec:
        job = {"kind": "calls", "imports": self.imports, "program": program, "calls": texts}
        return RunSpec(job=job, limits=self.limits)


def plan(index: int, answer: Answer, policy: SandboxPolicy) -> FormalProbe | Decision:
    """The probe for one eligible answer, or an ``audit`` decision saying why it is not checked."""
    options = policy.watchdog
    reference = answer.reference_program or ""
    try:
        check_program(reference)
        imports = parse_import_list(answer.imports)
    except TextRejected as exc:
        return _not_checked(f"the reference program or the imports are rejected ({exc})")
    examples = example_arguments(answer.inputs)
    if examples is None:
        return _not_checked("the inputs are not plain literal arguments")
    types = argument_types(examples)
    if types is None:
        return _not_checked("the argument types are outside what the check covers")
    header = "\n".join(imports)
    reasons = impurity(
        [("reference", f"{header}\n{reference}"), ("answer", f"{header}\n{answer.answer}")],
        options.formal_max_ast_nodes,
    )
    if reasons:
        return _not_checked(f"not a small pure program: {'; '.join(reasons)}")
    budget = min(options.formal_budget_seconds, policy.limits.wall_time_seconds)
    return FormalProbe(index, imports, reference, answer.answer, types, policy.limits.within(budget), budget)


def _not_checked(why: str) -> Decision:
    return decide([finding("audit", f"not checked: {why}")])


async def screen(
    service: Service,
    policy: SandboxPolicy,
    isolated: Callable[[], SandboxPolicy],
    answers: list[Answer],
    results: list[CheckResult],
) -> list[Decision | None]:
    """The check's decision for each answer (None where it does not apply or is off)."""
    if not policy.watchdog.formal_check:
        return [None] * len(answers)

    async def judge_all(probes: list[FormalProbe]) -> list[Decision]:
        searched = await service.run(policy, [probe.search() for probe in probes])
        return list(
            await asyncio.gather(
                *(_judge(service, policy, isolated, p, r) for p, r in zip(probes, searched, strict=True))
            )
        )

    return await screen_eligible(service, policy, answers, results, plan=plan, judge=judge_all)


async def _judge(
    service: Service,
    policy: SandboxPolicy,
    isolated: Callable[[], SandboxPolicy],
    probe: FormalProbe,
    result: RunResult,
) -> Decision:
    mode = policy.watchdog.formal_mode
    step = interpret(result, probe.budget_seconds, mode)
    if isinstance(step, Decision):
        return step
    if isinstance(step, Failed):
        return decide([await _attribute(service, policy, probe, step.failure, mode)])
    references, answers = await asyncio.gather(
        service.run(isolated(), [probe.calls(probe.reference, step.texts)]),
        service.run(policy, [probe.calls(probe.answer, step.texts)]),
    )
    return confirm(step, references[0], answers[0], probe.budget_seconds, mode)


async def _attribute(
    service: Service, policy: SandboxPolicy, probe: FormalProbe, failure: str, mode: Mode
) -> Finding:
    """A failed search: blame the answer only if the reference searched against itself runs cleanly."""
    [alone] = await service.run(policy, [probe.search(against_itself=True)])
    clean = read_report(alone)
    if isinstance(clean, str) or clean.status != "searched":
        why = clean if isinstance(clean, str) else clean.status
        return finding(
            "audit", f"not checked: the check failed ({failure}), and so does the reference alone ({why})"
        )
    message = f"the check failed on the answer: {failure} within {probe.budget_seconds:g} s"
    return finding(mode, message, "the reference program searched against itself runs cleanly")
