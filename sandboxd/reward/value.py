"""The value-shaped reward of one checked answer: pure functions on plain values.

Signals, each in [0, 1]:

- **explainability**: the mean of ``documented`` (a docstring or a comment), ``readable_names`` (the
  share of distinct bound identifiers, other than the entry point ``f`` and ``_``, at least
  ``min_name_chars`` long; 1 when there are none) and ``complexity`` (1 at or below the cyclomatic cap,
  else cap / complexity). A program that does not parse scores 0.
- **watchdog**: ``max(0, 1 - warn_penalty * warn findings)``; audit findings do not count, and an
  enforce finding has already made the verdict ``vetoed``.
- **preference**: 1 for a human ``approve``, 0 for ``flag``; without a label it is left out, and the
  weights of the others are renormalised.

The reward is the weighted mean of the available components, and 0 for a wrong answer when the policy
gates on correctness.
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from .policy import ValueRewardPolicy

Label = Literal["approve", "flag"]
_ENTRY_POINT = "f"


@dataclass(frozen=True)
class Explainability:
    """The explainability signals of a program."""

    documented: float
    readable_names: float
    complexity: float

    @property
    def score(self) -> float:
        return (self.documented + self.readable_names + self.complexity) / 3


@dataclass(frozen=True)
class ValueReward:
    """The shaped reward and the components it was mixed from (``None``: not available)."""

    reward: float
    correct: bool
    components: dict[str, float | None]
    explainability: Explainability | None


def _has_comment(program: str) -> bool:
    try:
        return any(
            t.type == tokenize.COMMENT for t in tokenize.generate_tokens(io.StringIO(program).readline)
        )
    except (tokenize.TokenError, SyntaxError):
        return False


def _bound_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
    return names - {_ENTRY_POINT, "_"}


def explainability(program: str, policy: ValueRewardPolicy) -> Explainability:
    """Parse (never run) ``program`` and score how explainable it is."""
    from radon.visitors import ComplexityVisitor  # noqa: PLC0415 - radon loads only when shaping is used

    try:
        tree = ast.parse(program)
        cyclomatic = int(ComplexityVisitor.from_ast(tree).total_complexity)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return Explainability(0.0, 0.0, 0.0)
    docstring = any(
        ast.get_docstring(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    )
    names = _bound_names(tree)
    readable = sum(len(n) >= policy.min_name_chars for n in names) / len(names) if names else 1.0
    complexity = 1.0 if cyclomatic <= policy.cyclomatic_cap else policy.cyclomatic_cap / cyclomatic
    return Explainability(float(docstring or _has_comment(program)), readable, complexity)


def value_reward(
    policy: ValueRewardPolicy,
    *,
    correct: bool,
    program: str | None,
    finding_modes: Iterable[str] = (),
    label: Label | None = None,
) -> ValueReward:
    """Mix the components of one answer. ``finding_modes`` are the watchdog findings' modes."""
    weights = policy.weights
    signals = None if program is None else explainability(program, policy)
    warns = sum(mode == "warn" for mode in finding_modes)
    components: dict[str, float | None] = {
        "correctness": 1.0 if correct else 0.0,
        "explainability": None if signals is None else signals.score,
        "watchdog": max(0.0, 1.0 - policy.warn_penalty * warns),
        "preference": None if label is None else float(label == "approve"),
    }
    weighted = [(getattr(weights, name), value) for name, value in components.items() if value is not None]
    total_weight = sum(w for w, _ in weighted)
    reward = sum(w * v for w, v in weighted) / total_weight if total_weight > 0 else 0.0
    if policy.gate_on_correctness and not correct:
        reward = 0.0
    return ValueReward(reward, correct, components, signals)
