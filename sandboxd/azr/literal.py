"""Expected outputs that are plain literals are read on the trusted side, without any evaluation.

DESIGN.md §1: expected outputs never enter the sandbox that runs an answer. Most AZR outputs are
literals (``[1, 2]``, ``{'a': (1, 'x')}``), which this module turns into values by walking the
``ast`` (no ``eval``, no ``literal_eval`` recursion limits). The rest (``Counter({...})``,
``deque([...])``) are evaluated in sandboxes before any answer runs there (docs/azr.md).
"""

from __future__ import annotations

import ast
import warnings
from typing import Any

MAX_NODES = 200_000
MAX_DEPTH = 100
MAX_INT_DIGITS = 4000


class NotLiteral(ValueError):
    """The text is not a plain literal (it may still be a valid expression)."""


def parse_literal(text: str) -> Any:
    """Return the value of a literal expression, or raise :class:`NotLiteral`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes in model text are not our errors
            tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise NotLiteral(f"does not parse: {type(exc).__name__}") from None
    budget = [MAX_NODES]
    return _value(tree.body, 0, budget)


def _value(node: ast.AST, depth: int, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_DEPTH:
        raise NotLiteral("too large or too deep")
    if isinstance(node, ast.Constant):
        value = node.value
        if type(value) in (str, bytes, bool, float) or value is None:
            return value
        if type(value) is int:
            if value.bit_length() > MAX_INT_DIGITS * 3.33:
                raise NotLiteral("integer too long")
            return value
        raise NotLiteral(f"constant of type {type(value).__name__}")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _value(node.operand, depth + 1, budget)
        if type(operand) not in (int, float):
            raise NotLiteral("sign on a non-number")
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.List):
        return [_value(item, depth + 1, budget) for item in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_value(item, depth + 1, budget) for item in node.elts)
    if isinstance(node, ast.Set):
        try:
            return {_value(item, depth + 1, budget) for item in node.elts}
        except TypeError as exc:
            raise NotLiteral("unhashable set element") from exc
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):
            raise NotLiteral("dict unpacking")
        try:
            return {
                _value(key, depth + 1, budget): _value(value, depth + 1, budget)
                for key, value in zip(node.keys, node.values, strict=True)
                if key is not None
            }
        except TypeError as exc:
            raise NotLiteral("unhashable dict key") from exc
    if isinstance(node, ast.Name) and node.id in ("inf", "nan"):  # not Python, but never a value
        raise NotLiteral(f"bare name {node.id}")
    empty = {"set": set, "frozenset": frozenset, "list": list, "tuple": tuple, "dict": dict}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.args and not node.keywords:
        maker = empty.get(node.func.id)  # empty containers: set() and friends
        if maker is not None:
            return maker()
    raise NotLiteral(f"{type(node).__name__} is not a literal")
