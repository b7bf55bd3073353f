"""The value-reward policy: weights of each component, and the knobs of each signal.

The defaults reproduce plain correctness (weight 1 on correctness, 0 elsewhere), so turning the feature
on changes nothing until a policy sets other weights. ``gate_on_correctness`` (default true) makes a
wrong answer worth 0 whatever its other components: explainability and preference can shape the reward
of correct answers but never make a wrong one pay.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ValueRewardWeights(BaseModel):
    """Non-negative weights; the reward is the weighted mean of the components that are available."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    correctness: float = Field(1.0, ge=0)  # 1 if the answer is correct, else 0
    explainability: float = Field(
        0.0, ge=0
    )  # docstring or comments, readable names, complexity under the cap
    watchdog: float = Field(0.0, ge=0)  # 1 minus a penalty per warn finding
    preference: float = Field(0.0, ge=0)  # a human label: approve 1, flag 0; left out when unlabelled


class ValueRewardPolicy(BaseModel):
    """How ``check`` shapes its reward (policy key ``value_reward``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: ValueRewardWeights = ValueRewardWeights()
    gate_on_correctness: bool = True  # a wrong answer gets 0, whatever else it has
    cyclomatic_cap: int = Field(10, ge=1)  # complexity at or below this scores 1; above, cap / complexity
    min_name_chars: int = Field(3, ge=1)  # identifiers at least this long count as readable
    warn_penalty: float = Field(0.5, ge=0, le=1)  # watchdog component lost per warn finding (floor 0)
