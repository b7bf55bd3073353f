"""Wiring of the value-shaped reward and the spot-check decisions: pure functions on plain values
(docs/value-reward.md, docs/reviews.md)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sandboxd.azr.schemas import Answer, CheckResult, ProposedTask, Reason, Usage
from sandboxd.reviews.policy import ReviewPolicy
from sandboxd.reviews.sampling import draw, sampled, task_key_of_answer, task_key_of_task
from sandboxd.reward.policy import ValueRewardPolicy, ValueRewardWeights
from sandboxd.reward.shaping import explained_program, shape
from sandboxd.watchdog.confidence import Inputs, Window, reasons, score
from sandboxd.watchdog.safety import ThrottleConfig, Weights
from sandboxd.watchdog.wiring import WatchdogFinding, WatchdogReport

CLEAR = 'def f(numbers):\n    """Sum them."""\n    return sum(numbers)\n'
TERSE = "def f(a):\n    b = sum(a)\n    return b\n"
SHAPED = ValueRewardPolicy(
    weights=ValueRewardWeights(correctness=1, explainability=1, watchdog=1, preference=1)
)


def answer(task_type: str = "deduction", **fields: object) -> Answer:
    base: dict[str, object] = {"task_type": task_type, "answer": "3", "program": CLEAR, "input": "[1, 2]"}
    if task_type == "induction":
        base = {"task_type": "induction", "answer": TERSE, "inputs": ["[1]"], "outputs": ["1"]}
    return Answer.model_validate({**base, **fields})


def result(correct: bool = True, modes: tuple[str, ...] = ()) -> CheckResult:
    findings = [
        WatchdogFinding(
            rule_id=f"r{n}", pack="p", mode=mode, severity="low", message="m", line=0, col=0, evidence=""
        )
        for n, mode in enumerate(modes)
    ]
    report = WatchdogReport(decision="warn" if modes else "allow", findings=findings)
    return CheckResult(
        correct=correct,
        reward=float(correct),
        reason=Reason.OK if correct else Reason.WRONG_ANSWER,
        usage=Usage(),
        watchdog=report,
    )


@pytest.mark.parametrize("correct", [True, False])
def test_default_policy_total_is_the_binary_reward(correct: bool) -> None:
    """With the default policy the total equals the binary reward, and unweighted components are not computed."""
    shaped = shape(ValueRewardPolicy(), answer(), result(correct), label="flag")
    assert shaped.total == float(correct)
    assert shaped.components.explainability is None
    assert shaped.components.preference is None
    assert shaped.signals is None
    assert shaped.label is None  # the label is ignored without a preference weight


def test_shaped_components_and_total() -> None:
    """All four components are reported and the total is their weighted mean."""
    shaped = shape(SHAPED, answer(), result(modes=("warn", "audit")), label="approve")
    c = shaped.components
    assert (c.correctness, c.watchdog, c.preference) == (1.0, 0.5, 1.0)
    assert c.explainability == pytest.approx(1.0)  # documented, readable, simple
    assert shaped.signals is not None
    assert shaped.signals.documented == 1.0
    assert shaped.total == pytest.approx((1.0 + 1.0 + 0.5 + 1.0) / 4)
    assert shaped.label == "approve"


def test_flag_lowers_but_never_pays_a_wrong_answer() -> None:
    """A flag lowers a correct answer's total; a wrong answer gets 0 whatever its label."""
    approved = shape(SHAPED, answer(), result(), label="approve").total
    flagged = shape(SHAPED, answer(), result(), label="flag").total
    assert flagged < approved
    assert shape(SHAPED, answer(), result(correct=False), label="approve").total == 0.0


@pytest.mark.parametrize(
    ("task", "program"),
    [
        pytest.param(answer(), CLEAR, id="deduction-task-program"),
        pytest.param(answer("abduction"), CLEAR, id="abduction-task-program"),
        pytest.param(answer("induction"), TERSE, id="induction-solver-program"),
    ],
)
def test_explained_program(task: Answer, program: str) -> None:
    """Induction explains the solver's program; deduction and abduction the task's."""
    assert explained_program(task) == program


def test_task_keys_tie_tasks_and_answers() -> None:
    """A proposed task and the answers to it share a key; an induction answer uses its reference program."""
    proposed = ProposedTask(task_type="deduction", program=CLEAR, inputs=["[1]"])
    assert (
        task_key_of_task(proposed) == task_key_of_answer(answer()) == task_key_of_answer(answer("abduction"))
    )
    assert task_key_of_answer(answer("induction", reference_program=CLEAR)) == task_key_of_task(proposed)
    assert task_key_of_answer(answer("induction")) != task_key_of_answer(answer("induction", outputs=["2"]))
    assert task_key_of_answer(answer(program=TERSE)) != task_key_of_task(proposed)


def test_sampling_is_seeded_deterministic_and_proportional() -> None:
    """The same item always gets the same draw; the seed changes it; the sampled share tracks the fraction."""
    content = {"answer": "3"}
    assert draw("s", "answer_checked", content) == draw("s", "answer_checked", content)
    assert draw("s", "answer_checked", content) != draw("t", "answer_checked", content)
    assert draw("s", "answer_checked", content) != draw("s", "task_proposed", content)
    policy = ReviewPolicy(sample_fraction=0.1, seed="s")
    share = sum(sampled(policy, "answer_checked", {"n": n}) for n in range(20_000)) / 20_000
    assert share == pytest.approx(0.1, abs=0.01)
    assert not any(sampled(ReviewPolicy(), "answer_checked", {"n": n}) for n in range(1000))
    assert all(sampled(ReviewPolicy(sample_fraction=1.0), "answer_checked", {"n": n}) for n in range(1000))


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"sample_fraction": 1.5}, id="fraction-above-1"),
        pytest.param({"sample_fraction": -0.1}, id="negative-fraction"),
        pytest.param({"fraction": 0.5}, id="unknown-key"),
    ],
)
def test_review_policy_is_strict(fields: dict[str, object]) -> None:
    """Out-of-range fractions and unknown keys are rejected."""
    with pytest.raises(ValidationError):
        ReviewPolicy.model_validate(fields)


def test_flag_rate_in_the_confidence_window() -> None:
    """Flags over labels in the window lower the score by the flags weight; they expire with the window."""
    window = Window(ThrottleConfig(window_seconds=60))
    window.label(0.0, flagged=True)
    window.label(1.0, flagged=False)
    inputs = window.inputs(2.0)
    assert inputs.flag_rate == 0.5
    weights = Weights()
    assert score(inputs, weights) == pytest.approx(1 - weights.flags * 0.5)
    assert any("flag" in reason for reason in reasons(inputs, weights))
    assert window.inputs(100.0).flag_rate == 0.0
    assert score(Inputs(), weights) == 1.0


def test_trainer_client_reads_value_reward_and_tolerates_its_absence() -> None:
    """The client model parses the server's value_reward, and older servers' answers still parse (None)."""
    import trainer_client  # noqa: PLC0415 - the client package is only needed here

    shaped = shape(SHAPED, answer(), result(modes=("warn",)), label="flag")
    server = result().model_copy(update={"value_reward": shaped}).model_dump(mode="json")
    parsed = trainer_client.CheckResult.model_validate(server)
    assert parsed.value_reward is not None
    assert parsed.value_reward.total == shaped.total
    assert parsed.value_reward.components["preference"] == 0.0
    assert parsed.value_reward.label == "flag"
    old = {"correct": True, "reward": 1.0, "reason": "ok"}
    assert trainer_client.CheckResult.model_validate(old).value_reward is None
