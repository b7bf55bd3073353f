"""Value-shaped reward: correctness, explainability, watchdog penalties and human preference, mixed by policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from curriculum_data import pool
from pydantic import ValidationError

from sandboxd.reward.policy import ValueRewardPolicy, ValueRewardWeights
from sandboxd.reward.value import explainability, value_reward

CLEAR = '''def f(numbers):
    """Sum the even numbers."""
    total = 0
    for number in numbers:
        if number % 2 == 0:
            total += number
    return total
'''
TERSE = "def f(a):\n    b = 0\n    for c in a:\n        if c % 2 == 0:\n            b += c\n    return b\n"
BRANCHY = (
    "def f(x):\n" + "".join(f"    if x == {i}:\n        return {i}\n" for i in range(30)) + "    return -1\n"
)
SHAPED = ValueRewardPolicy(
    weights=ValueRewardWeights(correctness=1, explainability=1, watchdog=1, preference=1)
)


@pytest.mark.parametrize("program", [CLEAR, TERSE, BRANCHY, "def f(:", None])
@pytest.mark.parametrize("correct", [True, False])
def test_default_policy_is_plain_correctness(program: str | None, correct: bool) -> None:
    """Without weights set, the shaped reward equals binary correctness."""
    result = value_reward(
        ValueRewardPolicy(), correct=correct, program=program, finding_modes=["warn"], label="flag"
    )
    assert result.reward == (1.0 if correct else 0.0)


def test_explainability_signals() -> None:
    """Docstring, readable names and low complexity score 1; terse names and high complexity score less."""
    policy = ValueRewardPolicy()
    clear, terse, branchy = (explainability(p, policy) for p in (CLEAR, TERSE, BRANCHY))
    assert clear.score == 1.0
    assert terse.documented == 0.0
    assert terse.readable_names == 0.0
    assert terse.complexity == 1.0
    assert branchy.complexity == pytest.approx(10 / 31)
    assert explainability(TERSE.replace("    b = 0", "    b = 0  # running sum"), policy).documented == 1.0


@pytest.mark.parametrize(
    "program",
    [
        pytest.param("def f(:", id="syntax-error"),
        pytest.param("(" * 5000 + ")" * 5000, id="deep-nesting"),
        pytest.param("s = '''unterminated", id="unterminated"),
    ],
)
def test_unparseable_programs_score_zero(program: str) -> None:
    """Text that does not parse gets explainability 0 instead of an error."""
    assert explainability(program, ValueRewardPolicy()).score == 0.0


def test_programs_are_never_executed(tmp_path: Path) -> None:
    """Scoring a program that would write a file on execution writes nothing."""
    target = tmp_path / "pwned"
    program = f'"""Doc."""\nopen({str(target)!r}, "w").write("x")\ndef f(value):\n    return value\n'
    assert explainability(program, ValueRewardPolicy()).documented == 1.0
    assert not target.exists()


def test_wrong_answers_never_pay_when_gated() -> None:
    """A wrong answer scores 0 however explainable and approved, unless the policy lifts the gate."""
    assert value_reward(SHAPED, correct=False, program=CLEAR, label="approve").reward == 0.0
    ungated = SHAPED.model_copy(update={"gate_on_correctness": False})
    assert value_reward(ungated, correct=False, program=CLEAR, label="approve").reward == pytest.approx(0.75)


def test_components_and_mix() -> None:
    """Warn findings cost the watchdog component; audit findings do not; a missing label is left out."""
    result = value_reward(SHAPED, correct=True, program=TERSE, finding_modes=["warn", "audit"])
    assert result.components["watchdog"] == 0.5
    assert result.components["preference"] is None
    explain = result.components["explainability"]
    assert explain is not None
    assert result.reward == pytest.approx((1 + explain + 0.5) / 3)
    flagged = value_reward(SHAPED, correct=True, program=CLEAR, label="flag")
    approved = value_reward(SHAPED, correct=True, program=CLEAR, label="approve")
    assert flagged.reward == pytest.approx(0.75)
    assert approved.reward == 1.0
    many = value_reward(SHAPED, correct=True, program=CLEAR, finding_modes=["warn"] * 5)
    assert many.components["watchdog"] == 0.0


def test_policy_is_strict() -> None:
    """Negative weights, unknown keys and out-of-range penalties are rejected."""
    with pytest.raises(ValidationError):
        ValueRewardWeights(correctness=-1)
    with pytest.raises(ValidationError):
        ValueRewardPolicy.model_validate({"weights": {"style": 1}})
    with pytest.raises(ValidationError):
        ValueRewardPolicy(warn_penalty=2)


def test_real_programs_stay_in_range() -> None:
    """Every AZR and CRUXEval program gets an explainability score in [0, 1] and a reward in [0, 1]."""
    policy = ValueRewardPolicy()
    scores = [explainability(p.code, policy).score for p in pool()]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert 0.2 < sum(scores) / len(scores) < 0.9
    assert all(0.0 <= value_reward(SHAPED, correct=True, program=p.code).reward <= 1.0 for p in pool()[:200])
