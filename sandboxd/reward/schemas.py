"""The value-shaped reward as ``/v1/azr/check`` returns it next to the binary ``correct``/``reward``."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ExplainabilitySignals(BaseModel):
    """The three explainability signals, each in [0, 1]; their mean is the component."""

    documented: float
    readable_names: float
    complexity: float


class ValueRewardComponents(BaseModel):
    """Each component in [0, 1]; null when it was not computed (weight 0) or is unavailable (no label)."""

    correctness: float
    explainability: float | None = None
    watchdog: float
    preference: float | None = None


class ValueRewardPublic(BaseModel):
    """The policy's weighted mix (docs/value-reward.md); with the default policy ``total`` equals ``reward``."""

    total: float = Field(
        description="Weighted mean of the available components; 0 for a wrong answer when gated"
    )
    components: ValueRewardComponents
    signals: ExplainabilitySignals | None = Field(
        None, description="The explainability breakdown, when computed"
    )
    label: str | None = Field(None, description="The human label (approve or flag) the preference came from")
