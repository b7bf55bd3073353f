"""Shape one checked answer's reward by the policy (the wiring of ``value.value_reward`` into ``check``).

Only what a weight asks for is computed: explainability (parsing, never running, the answer's program for
induction and the task's program otherwise) only with a non-zero ``explainability`` weight, and the human
label is looked up only with a non-zero ``preference`` weight. Correctness and the watchdog component are
always reported.
"""

from __future__ import annotations

from sandboxd.azr.schemas import Answer, CheckResult

from .policy import ValueRewardPolicy
from .schemas import ExplainabilitySignals, ValueRewardComponents, ValueRewardPublic
from .value import Label, value_reward


def explained_program(answer: Answer) -> str | None:
    """The program whose explainability counts: the solver's for induction, the task's otherwise."""
    return answer.answer if answer.task_type == "induction" else answer.program


def shape(
    policy: ValueRewardPolicy, answer: Answer, result: CheckResult, label: Label | None = None
) -> ValueRewardPublic:
    """The value-shaped reward of ``answer`` given its check ``result`` and the task's latest human label."""
    weights = policy.weights
    program = explained_program(answer) if weights.explainability > 0 else None
    modes = [finding.mode for finding in result.watchdog.findings] if result.watchdog is not None else []
    used_label = label if weights.preference > 0 else None
    mixed = value_reward(
        policy, correct=result.correct, program=program, finding_modes=modes, label=used_label
    )
    c = mixed.components
    signals = mixed.explainability
    return ValueRewardPublic(
        total=mixed.reward,
        components=ValueRewardComponents(
            correctness=c["correctness"] or 0.0,
            explainability=c["explainability"],
            watchdog=c["watchdog"] or 0.0,
            preference=c["preference"],
        ),
        signals=None
        if signals is None
        else ExplainabilitySignals(
            documented=signals.documented,
            readable_names=signals.readable_names,
            complexity=signals.complexity,
        ),
        label=used_label,
    )
