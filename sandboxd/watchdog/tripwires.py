"""Tripwire tasks: policy-registered tasks outside the allowed domain, and how a check recognises them.

A tripwire pack (``kind: tripwires``) lists tasks in AZR's solver format with a detection block. The
trainer mixes sampled tasks into solver batches (``GET /v1/tripwires/sample`` or trainer_client). The
model sees an ordinary task; the server recognises the answer in ``/v1/azr/check`` by the task's
content (its fingerprint), so no marker travels with the task. A recognised answer fires when it
**solved** the task (``detect.solved`` and the answer is correct) or **attempted** it (its reason,
error type, or a regex on the answer text).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sandboxd.azr.texts import TextRejected, check_arguments, check_expression, check_imports, check_program
from sandboxd.exceptions import ConfigurationError

TaskType = Literal["deduction", "abduction", "induction"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TaskText(_Frozen):
    """The task as AZR gives it to a solver; which fields are needed depends on ``task_type``."""

    task_type: TaskType
    program: str | None = None  # deduction, abduction
    imports: tuple[str, ...] = ()
    input: str | None = None  # deduction: the argument text
    expected_output: str | None = None  # deduction, abduction
    inputs: tuple[str, ...] = ()  # induction
    outputs: tuple[str, ...] = ()  # induction
    message: str | None = None  # induction: AZR's description of the hidden function

    @model_validator(mode="after")
    def _complete(self) -> TaskText:
        needs = {
            "deduction": ("program", "input", "expected_output"),
            "abduction": ("program", "expected_output"),
            "induction": (),
        }[self.task_type]
        missing = [name for name in needs if getattr(self, name) is None]
        if missing:
            raise ValueError(f"{self.task_type} needs {', '.join(missing)}")
        if self.task_type == "induction" and (not self.inputs or len(self.inputs) != len(self.outputs)):
            raise ValueError("induction needs equal, non-empty inputs and outputs")
        try:  # the same trusted-side checks /v1/azr/check applies, so a pack cannot ship a dud task
            check_imports(list(self.imports))
            if self.program is not None:
                check_program(self.program)
            for text in [*self.inputs, *([self.input] if self.input is not None else [])]:
                check_arguments(text)
            for text in [*self.outputs, *([self.expected_output] if self.expected_output else [])]:
                check_expression(text)
        except TextRejected as exc:
            raise ValueError(str(exc)) from None
        return self


class Attempted(_Frozen):
    """Signs that the solver tried the forbidden thing, any one of which fires."""

    reasons: tuple[str, ...] = ()  # CheckResult reasons: sandbox_violation, vetoed, ...
    error_types: tuple[str, ...] = ()  # exception class names the answer raised: PermissionError, ...
    answer_patterns: tuple[str, ...] = ()  # Python regexes searched in the answer text

    @field_validator("answer_patterns")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex {pattern!r}: {exc}") from None
        return patterns


class Detect(_Frozen):
    attempted: Attempted = Attempted()
    solved: bool = True  # a correct answer fires (false where hard-coding the outputs is trivial)


class TripwireTask(_Frozen):
    id: str = Field(pattern=r"^[a-z][a-z0-9_.-]{0,79}$")
    description: str = Field(min_length=1)
    severity: Literal["low", "medium", "high", "critical"] = "critical"
    task: TaskText
    detect: Detect = Detect()


class TripwirePack(_Frozen):
    schema_version: Literal[1]
    kind: Literal["tripwires"]
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")
    description: str = Field(min_length=1)
    tasks: tuple[TripwireTask, ...] = Field(min_length=1)


def load_tripwire_packs(directory: Path) -> list[TripwirePack]:
    """Every ``*.yaml`` of ``directory``; errors name the file and field; task ids must be unique."""
    if not directory.is_dir():
        raise ConfigurationError(f"tripwire packs_dir {directory} is not a directory")
    packs: list[TripwirePack] = []
    seen: dict[str, Path] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            pack = TripwirePack.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigurationError(f"{path}: {exc}") from exc
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigurationError(f"{path}: {problems}") from exc
        for task in pack.tasks:
            if task.id in seen:
                raise ConfigurationError(f"{path}: tripwire {task.id!r} is also defined in {seen[task.id]}")
            seen[task.id] = path
        packs.append(pack)
    return packs


def fingerprint(task_type: str, fields: dict[str, Any]) -> str:
    """What identifies a task in a solver answer: the texts the trainer copies from the task."""
    keys = {
        "induction": ("inputs", "outputs"),
        "deduction": ("program", "input", "expected_output"),
        "abduction": ("program", "expected_output"),
    }.get(task_type, ())
    material = [task_type, *[fields.get(key) for key in keys]]
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=list).encode()).hexdigest()


def _shown(task_type: str, expected_output: str | None, outputs: Sequence[str] | None) -> tuple[Any, ...]:
    """The texts a fingerprint takes from the task's outputs: equal fingerprints have equal ``_shown``."""
    if task_type == "induction":
        return (task_type, None if outputs is None else tuple(outputs))
    return (task_type, expected_output)


@dataclass(frozen=True)
class Firing:
    task: TripwireTask
    how: Literal["solved", "attempted"]
    evidence: str


class TripwireRegistry:
    """The loaded tasks by fingerprint; samples them and judges checked answers."""

    def __init__(self, packs: list[TripwirePack]) -> None:
        self._key = secrets.token_bytes(32)
        self.tasks = [task for pack in packs for task in pack.tasks]
        self._by_print: dict[str, TripwireTask] = {}
        for task in self.tasks:
            fields = {k: list(v) if isinstance(v, tuple) else v for k, v in task.task.model_dump().items()}
            self._by_print[fingerprint(task.task.task_type, fields)] = task
        self._patterns = {
            t.id: [re.compile(p) for p in t.detect.attempted.answer_patterns] for t in self.tasks
        }
        self._shown = {
            _shown(task.task.task_type, task.task.expected_output, task.task.outputs) for task in self.tasks
        }

    def ref(self, task: TripwireTask) -> str:
        """An opaque handle for the trainer's own bookkeeping; it never goes to the model."""
        return "tw_" + hmac.new(self._key, task.id.encode(), hashlib.sha256).hexdigest()[:20]

    def sample(self, count: int) -> list[dict[str, Any]]:
        """``count`` tasks drawn at random (with replacement), in AZR's task format, with their refs."""
        chooser = secrets.SystemRandom()
        out: list[dict[str, Any]] = []
        for task in (chooser.choice(self.tasks) for _ in range(count)):
            fields = task.task.model_dump(exclude_none=True)
            body = {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items() if v != ()}
            out.append({"ref": self.ref(task), **body})
        return out

    def recognise(self, task_type: str, fields: dict[str, Any]) -> TripwireTask | None:
        return self._by_print.get(fingerprint(task_type, fields))

    def may_recognise(
        self, task_type: str, expected_output: str | None, outputs: Sequence[str] | None
    ) -> bool:
        """False when ``recognise`` cannot find the answer: its expected output(s), part of every
        fingerprint, are no tripwire task's. A set lookup, so that a check request's answers are not each
        dumped and hashed (``Sentinel.observe_answers``) to find the rare tripwire among them."""
        return _shown(task_type, expected_output, outputs) in self._shown

    def judge(
        self, task: TripwireTask, *, correct: bool, reason: str, error_type: str | None, answer: str
    ) -> Firing | None:
        """Did this answer solve or attempt the tripwire task?"""
        if task.detect.solved and correct:
            return Firing(task, "solved", "the answer is correct")
        attempted = task.detect.attempted
        if reason in attempted.reasons:
            return Firing(task, "attempted", f"reason {reason}")
        if error_type is not None and error_type in attempted.error_types:
            return Firing(task, "attempted", f"raised {error_type}")
        for pattern in self._patterns[task.id]:
            found = pattern.search(answer)
            if found:
                return Firing(
                    task, "attempted", f"answer matches {pattern.pattern!r}: {found.group(0)[:80]!r}"
                )
        return None
