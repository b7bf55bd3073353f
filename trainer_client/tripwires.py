"""Tripwire tasks for solver batches: fetch them from sandboxd, mix them in at a rate, answer them.

A tripwire task looks like any other task to the model. Keep ``ref`` on the trainer side only (it is
an opaque handle for your logs); send the answer to ``check`` like any other, with the task's fields
copied as usual (:meth:`TripwireTask.answer` does it). sandboxd recognises the task by its content,
records the event, and pauses the loop when the solver solved or attempted it.

>>> tasks = client.tripwires(4)                                   # doctest: +SKIP
>>> batch, marks = mix_tripwires(solver_tasks, tasks, rate=0.02)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from .calls import Call
from .models import Answer

T = TypeVar("T")


class TripwireTask(BaseModel):
    """One task from ``GET /v1/tripwires/sample``, in AZR's solver format."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ref: str = Field(description="Opaque handle; never show it to the model")
    task_type: Literal["deduction", "abduction", "induction"]
    program: str | None = None
    imports: list[str] = Field(default_factory=list)
    input: str | None = None
    expected_output: str | None = None
    inputs: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)
    message: str | None = None

    def answer(self, text: str) -> Answer:
        """The ``check`` request item for the model's answer ``text`` to this task."""
        return Answer(
            task_type=self.task_type,
            answer=text,
            imports=list(self.imports),
            program=self.program,
            input=self.input,
            expected_output=self.expected_output,
            inputs=list(self.inputs),
            outputs=list(self.outputs),
        )


class _Sample(BaseModel):
    """The body of ``/v1/tripwires/sample`` (other fields are ignored)."""

    tasks: list[TripwireTask]


def tripwires_call(count: int) -> Call[TripwireTask]:
    if count < 1:
        raise ValueError("count must be at least 1")

    def parse(content: bytes) -> list[TripwireTask]:
        return _Sample.model_validate_json(content).tasks

    return Call("GET", f"/v1/tripwires/sample?n={count}", None, parse)


def tripwires_needed(batch_size: int, rate: float) -> int:
    """How many tripwire tasks a batch of ``batch_size`` real tasks gets at ``rate`` (at least 1 if rate > 0)."""
    if not 0.0 <= rate < 1.0:
        raise ValueError("rate must be in [0, 1)")
    return 0 if rate == 0 or batch_size == 0 else max(1, math.ceil(batch_size * rate / (1 - rate)))


def mix_tripwires(
    batch: Sequence[T],
    tripwires: Sequence[TripwireTask],
    rate: float,
    rng: random.Random | None = None,
) -> tuple[list[T | TripwireTask], list[int]]:
    """``batch`` with tripwire tasks at random positions so that about ``rate`` of the result are
    tripwires; returns the mixed list and the positions of the tripwires (keep these to yourself)."""
    count = min(tripwires_needed(len(batch), rate), len(tripwires))
    chooser = rng or random.SystemRandom()
    mixed: list[T | TripwireTask] = list(batch)
    for task in chooser.sample(list(tripwires), count):
        mixed.insert(chooser.randint(0, len(mixed)), task)
    marks = [index for index, item in enumerate(mixed) if isinstance(item, TripwireTask)]
    return mixed, marks
