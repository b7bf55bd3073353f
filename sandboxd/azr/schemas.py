"""Request and response models of ``/v1/azr``, in AZR's task format."""

from __future__ import annotations

import enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sandboxd.reward.schemas import ValueRewardPublic
from sandboxd.watchdog.wiring import WatchdogReport

TaskType = Literal["deduction", "abduction", "induction"]


class Reason(enum.StrEnum):
    OK = "ok"
    WRONG_ANSWER = "wrong_answer"  # check only: ran fine, values differ
    SYNTAX_ERROR = "syntax_error"
    BAD_ARGUMENTS = "bad_arguments"  # argument/answer text is not plain arguments or a plain expression
    RUNTIME_ERROR = "runtime_error"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    SANDBOX_VIOLATION = "sandbox_violation"
    NONDETERMINISTIC = "nondeterministic"
    NON_CANONICAL_OUTPUT = "non_canonical_output"
    INTERNAL_ERROR = "internal_error"  # a sandboxd fault; retry
    INFRASTRUCTURE_ERROR = "infrastructure_error"  # the sandbox was lost twice (killed, engine); retry
    VETOED = "vetoed"  # the static watchdog vetoed the program; it never reached a container


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Usage(BaseModel):
    wall_time_seconds: float = 0.0
    cpu_time_seconds: float = 0.0
    peak_memory_bytes: int = 0


class ProposedTask(_Strict):
    task_type: TaskType
    program: str = Field(description="Source defining f")
    imports: list[str] | str = Field(default_factory=list, description="Import lines (or AZR's string form)")
    inputs: list[str] = Field(
        min_length=1, description="Argument texts, each exactly what goes inside f(...)"
    )


class ValidateRequest(_Strict):
    tasks: list[ProposedTask] = Field(min_length=1)
    policy: str | None = None
    truncate_outputs: bool = Field(False, description="AZR's 400-character truncation of output reprs")
    allow_non_canonical: bool = Field(
        True, description="Accept outputs outside the canonical types (by repr)"
    )


class ValidateResult(BaseModel):
    valid: bool
    reason: Reason
    outputs: list[str | None] = Field(description="repr of f(input), taken inside the sandbox")
    values: list[Any] = Field(description="Canonical tagged values; null where not canonical")
    detail: str | None = None
    error_type: str | None = Field(None, description="Exception class name when the program raised")
    usage: Usage
    watchdog: WatchdogReport | None = Field(None, description="The static watchdog's decision; null when off")
    output_signature: str | None = Field(
        None,
        description="Hash of f's results on probe inputs derived from the example input's types "
        "(docs/azr.md); equal for programs that behave alike on them; null when probes are off or did not run",
    )


class ValidateResponse(BaseModel):
    results: list[ValidateResult]


class Answer(_Strict):
    task_type: TaskType
    imports: list[str] | str = Field(default_factory=list)
    answer: str = Field(
        description="deduction: an output expression; abduction: argument text; induction: a program"
    )
    program: str | None = Field(None, description="deduction and abduction: the task's program")
    input: str | None = Field(None, description="deduction: the argument text the output belongs to")
    expected_output: str | None = Field(
        None, description="deduction and abduction: the gold output expression"
    )
    inputs: list[str] = Field(default_factory=list, description="induction: hidden argument texts")
    outputs: list[str] = Field(default_factory=list, description="induction: hidden output expressions")
    reference_program: str | None = Field(
        None,
        description="induction: the proposer's program f. With the watchdog on, an answer that matches the "
        "shown pairs must also agree with it on generated inputs (docs/watchdog.md)",
    )


class CheckRequest(_Strict):
    answers: list[Answer] = Field(min_length=1)
    policy: str | None = None


class CheckResult(BaseModel):
    correct: bool
    reward: float
    reason: Reason
    compared_by: Literal["canonical", "repr"] | None = None
    evaluated_in: Literal["sandbox", "literal"] | None = Field(
        None,
        description="Where the answer's value came from: its own sandboxed process, or (a deduction answer "
        "that is a plain literal) the trusted-side literal reader, with nothing run. Null when it was "
        "rejected before either",
    )
    detail: str | None = None
    error_type: str | None = Field(None, description="Exception class name when the answer raised")
    usage: Usage
    watchdog: WatchdogReport | None = Field(None, description="The static watchdog's decision; null when off")
    value_reward: ValueRewardPublic | None = Field(
        None, description="The policy's value-shaped reward and its components (docs/value-reward.md)"
    )


class CheckResponse(BaseModel):
    results: list[CheckResult]
