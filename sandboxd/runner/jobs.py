"""What a child runs once it is locked down. Each job kind returns an :class:`Outcome`.

Only ``script`` exists at this layer: run the program as ``__main__``. Callers that need values
(the AZR verifier) add kinds here that evaluate argument text and call ``f`` *inside* the
sandbox, and report values through the canonical encoder, never through stdout.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_type = type
_type_name = type.__dict__["__name__"].__get__
_compile = compile
_exec = exec
_builtins_module = builtins
_BUILTIN_EXCEPTIONS = frozenset(
    value for value in vars(builtins).values() if isinstance(value, type) and issubclass(value, BaseException)
)


@dataclass
class Outcome:
    """How the job ended, before encoding into the result frame."""

    outcome: str = "ok"  # ok | exception | exit
    exc_type: str | None = None
    exc_builtin: bool = False
    exit_code: int = 0
    values: list[Any] = field(default_factory=list)


def describe_exception(exc: BaseException) -> Outcome:
    """Classify an exception without calling any of its methods."""
    cls = _type(exc)
    name = _type_name(cls)
    if _type(name) is not str:
        name = "?"
    if cls is SystemExit:
        code = exc.code  # type: ignore[attr-defined]  # cls is exactly SystemExit
        exit_code = code if _type(code) is int else (0 if code is None else 1)
        return Outcome(outcome="exit", exc_type=name, exc_builtin=True, exit_code=exit_code)
    return Outcome(outcome="exception", exc_type=name, exc_builtin=cls in _BUILTIN_EXCEPTIONS, exit_code=1)


def run_script(job: dict[str, Any]) -> Outcome:
    """Compile and execute ``job["code"]`` as the ``__main__`` module."""
    code = _compile(job["code"], "<program>", "exec")
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": _builtins_module}
    _exec(code, namespace)
    return Outcome()


JOB_KINDS: dict[str, Callable[[dict[str, Any]], Outcome]] = {"script": run_script}
