"""Request and result models, duplicated from the server's schemas rather than imported.

Requests are the client's own input, so they reject unknown fields (a typo fails here, not as a 422).
Results ignore unknown fields, so a newer server can add fields without breaking older clients; their
enumerated fields (``status``, ``reason``) are plain strings for the same reason, with the values known
today listed in :class:`Status` and :class:`Reason`.
"""

from __future__ import annotations

import enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TaskType = Literal["deduction", "abduction", "induction"]


class Status(enum.StrEnum):
    """Statuses of ``/v1/runs`` known to this client (``RunResult.status`` may hold others)."""

    OK = "ok"
    RUNTIME_ERROR = "runtime_error"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    SANDBOX_VIOLATION = "sandbox_violation"
    INTERNAL_ERROR = "internal_error"
    INFRASTRUCTURE_ERROR = "infrastructure_error"  # the sandbox was lost twice: retry, never punish
    VETOED = "vetoed"


class Reason(enum.StrEnum):
    """Reasons of ``/v1/azr`` known to this client (``reason`` fields may hold others)."""

    OK = "ok"
    WRONG_ANSWER = "wrong_answer"
    SYNTAX_ERROR = "syntax_error"
    BAD_ARGUMENTS = "bad_arguments"
    RUNTIME_ERROR = "runtime_error"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    SANDBOX_VIOLATION = "sandbox_violation"
    NONDETERMINISTIC = "nondeterministic"
    NON_CANONICAL_OUTPUT = "non_canonical_output"
    INTERNAL_ERROR = "internal_error"  # a sandboxd fault, not the program's: retry or skip, never punish
    INFRASTRUCTURE_ERROR = "infrastructure_error"  # the sandbox was lost twice: like internal_error


# Reasons that say nothing about the program: sandboxd could not score it. Retry or skip, never punish.
FAULT_REASONS = frozenset({Reason.INTERNAL_ERROR, Reason.INFRASTRUCTURE_ERROR})


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Result(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Limits(_Request):
    """Per-run limits; unset fields take the policy's defaults, and the policy's caps bound the rest."""

    wall_time_seconds: float | None = Field(None, gt=0)
    cpu_time_seconds: float | None = Field(None, gt=0)
    memory_bytes: int | None = Field(None, gt=0)
    output_bytes: int | None = Field(None, ge=0)
    file_size_bytes: int | None = Field(None, ge=0)
    open_files: int | None = Field(None, gt=0)


class RunSpec(_Request):
    """One program for ``/v1/runs/batch``."""

    code: str
    stdin: str = ""
    limits: Limits = Field(default_factory=Limits)
    metadata: dict[str, Any] = Field(default_factory=dict)


class ProposedTask(_Request):
    """A task a proposer wrote, for ``/v1/azr/validate``. ``inputs`` are argument texts of ``f(...)``."""

    task_type: TaskType
    program: str
    imports: list[str] | str = Field(default_factory=list)
    inputs: list[str] = Field(min_length=1)


class Answer(_Request):
    """A solver's answer, for ``/v1/azr/check``.

    deduction: ``answer`` is an output expression, compared with ``expected_output``;
    abduction: ``answer`` is argument text for ``program``'s ``f``, whose output must equal ``expected_output``;
    induction: ``answer`` is a program, run on ``inputs``, whose outputs must equal ``outputs``.
    """

    task_type: TaskType
    answer: str
    imports: list[str] | str = Field(default_factory=list)
    program: str | None = None
    input: str | None = None
    expected_output: str | None = None
    inputs: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)


class Usage(_Result):
    wall_time_seconds: float = 0.0
    cpu_time_seconds: float = 0.0
    peak_memory_bytes: int = 0


class RunResult(_Result):
    """The verdict on one program. ``status`` is a :class:`Status` value; ``ok`` only means it ran cleanly."""

    id: str
    status: str
    exit_code: int | None = None
    signal: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    wall_time_seconds: float = 0.0
    cpu_time_seconds: float = 0.0
    peak_memory_bytes: int = 0
    sandbox_id: str = ""
    policy: str = ""
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == Status.OK


class ValidateResult(_Result):
    """Whether a proposed task is valid; ``outputs`` are the ``repr`` of ``f(input)`` as AZR records them."""

    valid: bool
    reason: str
    outputs: list[str | None] = Field(default_factory=list)
    values: list[Any] = Field(default_factory=list)
    detail: str | None = None
    usage: Usage = Field(default_factory=Usage)
    # Hash of f on probe inputs derived from the example input's types (sandboxd docs/azr.md); equal for
    # tasks that behave alike on them, so usable to deduplicate proposals. None when probes are off.
    output_signature: str | None = None


class ValueReward(_Result):
    """The server policy's value-shaped reward (sandboxd docs/value-reward.md).

    ``components`` maps correctness, explainability, watchdog and preference to a value in [0, 1], or to
    None when the policy gives the component no weight or no human label exists.
    """

    total: float
    components: dict[str, float | None] = Field(default_factory=dict)
    signals: dict[str, float] | None = None
    label: str | None = None


class CheckResult(_Result):
    """Whether an answer is correct; ``reward`` is 1.0 or 0.0. ``value_reward`` is the shaped reward from
    servers that return one (None from older servers)."""

    correct: bool
    reward: float
    reason: str
    compared_by: str | None = None
    evaluated_in: str | None = None  # "sandbox", or "literal": a literal deduction answer, nothing ran
    detail: str | None = None
    usage: Usage = Field(default_factory=Usage)
    value_reward: ValueReward | None = None


class Health(_Result):
    status: str


class Readiness(_Result):
    """``/readyz``: ready when isolation works and every pool has a warm sandbox."""

    ready: bool
    reason: str | None = None
    pools: dict[str, Any] = Field(default_factory=dict)
