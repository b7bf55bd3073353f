"""The spot-check policy (policy key ``reviews``): which share of tasks and answers humans review.

Off by default (fraction 0): nothing is queued until a policy asks for it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class ReviewPolicy(BaseModel):
    """How ``/v1/azr/validate`` and ``/v1/azr/check`` sample items into the review queue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_fraction: float = Field(0.0, ge=0, le=1)  # share of proposed tasks and checked answers queued
    # Mixed into the seeded draw: with a seed the proposer cannot see, it cannot tell which items are reviewed.
    # A SecretStr, so that the effective policy logged at startup shows it as '**********'.
    seed: SecretStr = Field(SecretStr(""), max_length=256)
