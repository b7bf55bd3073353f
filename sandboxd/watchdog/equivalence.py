"""The formal equivalence check's pure parts, on the trusted side: eligibility, argument types, wording.

CrossHair (with z3) searches, inside the sandbox, for an input on which an induction answer and the
proposer's reference program differ (``sandboxd/runner/formal.py``; the request path is
``sandboxd/azr/equivalence.py``). It needs a type for each argument: :func:`argument_types` derives one
from the shown inputs, read as literals (never evaluated), the way the hard-coding detector derives its
Hypothesis strategies. It only takes **small pure programs** (:func:`impurity`): few AST nodes, imports
from a short list of pure modules, and no calls that reach the outside world or depend on it.

Wording rule: a search that finds nothing never claims a proof. Its finding says "no counterexample found
within <budget>" (:func:`no_counterexample`), never "proved", "verified" or "equivalent".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .decision import Finding, program_finding
from .facts import extract
from .rules import Mode

RULE_ID = "semantic.formal-equivalence"
PACK = "semantic"
MAX_TYPE_DEPTH = 4
# Modules whose functions compute values only (CrossHair runs them, concretely where it has no model).
PURE_MODULES = frozenset(
    {"math", "functools", "itertools", "collections", "operator", "string", "re", "heapq", "bisect", "typing",
     "copy", "fractions", "statistics"}
)  # fmt: skip
# Calls that reach the outside world, the interpreter's machinery, or nondeterminism.
IMPURE_CALLS = frozenset(
    {"print", "input", "open", "eval", "exec", "compile", "__import__", "globals", "locals", "vars",
     "setattr", "delattr", "getattr", "breakpoint", "id", "hash", "exit", "quit", "help", "memoryview"}
)  # fmt: skip
_SCALARS = {int: "int", float: "float", bool: "bool", str: "str", bytes: "bytes", type(None): "None"}


def argument_types(examples: Sequence[tuple[Any, ...]]) -> list[Any] | None:
    """One type description per positional argument (see ``runner/formal.py``), or None if any is
    outside what the check covers (another type, nesting deeper than ``MAX_TYPE_DEPTH``)."""
    if not examples or len({len(e) for e in examples}) != 1:
        return None
    out = [type_of([example[i] for example in examples]) for i in range(len(examples[0]))]
    return None if any(t is None for t in out) else out


def type_of(samples: Sequence[Any], depth: int = 0) -> Any:
    """The description of a type that holds every sample; a union when their types differ."""
    if depth > MAX_TYPE_DEPTH:
        return None
    by_type: dict[type, list[Any]] = {}
    for value in samples:
        by_type.setdefault(type(value), []).append(value)
    choices = [_describe(kind, values, depth) for kind, values in by_type.items()]
    if not choices or any(choice is None for choice in choices):
        return None
    return choices[0] if len(choices) == 1 else ["union", choices]


def _describe(kind: type, values: list[Any], depth: int) -> Any:
    if kind in _SCALARS:
        return _SCALARS[kind]
    if kind in (list, set, frozenset):
        element = _element([item for value in values for item in value], depth)
        return None if element is None else [kind.__name__, element]
    if kind is tuple:
        widths = {len(value) for value in values}
        if len(widths) == 1 and 0 < next(iter(widths)) <= 8:
            items = [type_of([value[i] for value in values], depth + 1) for i in range(next(iter(widths)))]
            return None if any(item is None for item in items) else ["tuple", items]
        element = _element([item for value in values for item in value], depth)
        return None if element is None else ["tuple...", element]
    if kind is dict:
        key = _element([k for value in values for k in value], depth)
        item = _element([v for value in values for v in value.values()], depth)
        return None if key is None or item is None else ["dict", key, item]
    return None


def _element(items: list[Any], depth: int) -> Any:
    """The element type of containers; an empty one says nothing, so ``int`` (as the detector does)."""
    return type_of(items, depth + 1) if items else "int"


def impurity(programs: Iterable[tuple[str, str]], max_ast_nodes: int) -> list[str]:
    """Why the (label, source) programs are not small and pure; empty when they are."""
    reasons: list[str] = []
    for label, source in programs:
        facts = extract(source)
        if not facts.parsed:
            reasons.append(f"the {label} does not parse")
            continue
        if facts.ast_nodes > max_ast_nodes:
            reasons.append(f"the {label} has {facts.ast_nodes} AST nodes > {max_ast_nodes}")
        modules = sorted({f.name for f in facts.imports if f.name.split(".")[0] not in PURE_MODULES})
        calls = sorted({f.name for f in facts.calls if f.name in IMPURE_CALLS})
        if modules:
            reasons.append(f"the {label} imports {', '.join(modules)}")
        if calls:
            reasons.append(f"the {label} calls {', '.join(calls)}")
    return reasons


def no_counterexample(budget_seconds: float) -> str:
    """The message of a search that found nothing: never a claim of proof."""
    return f"no counterexample found within {budget_seconds:g} s"


def finding(mode: Mode, message: str, evidence: str = "") -> Finding:
    return program_finding(RULE_ID, PACK, mode, message, evidence)
