"""Schemas of ``/v1/reviews`` (docs/reviews.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ReviewItemPublic(BaseModel):
    """A sampled task or answer awaiting a label; ``id`` is its ledger seq (check it with an inclusion proof)."""

    id: int
    kind: Literal["task_proposed", "answer_checked"]
    task_key: str = Field(description="sha256 of the task's program; labels feed later answers to this task")
    policy: str
    queued_at: str
    entry: dict[str, Any] = Field(description="The ledger entry's body")


class ReviewQueuePage(BaseModel):
    items: list[ReviewItemPublic]
    next_cursor: str | None = Field(
        None, description="Pass back as ?cursor= for the next page; null at the end"
    )


class LabelCreate(BaseModel):
    """A reviewer's judgement of one item; labels are final (a second one is 409)."""

    model_config = ConfigDict(extra="forbid")

    label: Literal["approve", "flag"]
    comment: str = Field(min_length=1, max_length=4000, description="Why; recorded in the ledger")

    @field_validator("comment")
    @classmethod
    def _storable(cls, comment: str) -> str:
        """Text both databases can store: valid UTF-8 (no lone surrogates) without NUL characters."""
        try:
            comment.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("comment must be valid Unicode text (no lone surrogates)") from None
        if "\x00" in comment:
            raise ValueError("comment must not contain NUL characters")
        return comment


class LabelPublic(BaseModel):
    item: int
    label: Literal["approve", "flag"]
    comment: str
    reviewer: str = Field(description="The id of the reviewer's token, or 'anonymous' when auth is off")
    time: str
    ledger_seq: int = Field(description="The seq of the review_label ledger entry")
