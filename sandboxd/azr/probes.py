"""Output-signature probes: a few inputs derived from the *types* of a task's example input.

Two programs with the same argument types get the same probe inputs, so the hash of what they return on
them (the **output signature**) is comparable across programs: equal signatures mean equal behaviour on
the probes, whatever the texts look like. Probe values come from fixed tables here (trusted text, built
with ``repr`` of builtin values), never from model text. They run inside the sandbox, in the validation's
own child, after its result frame (runner/child.py); a probe that raises contributes its exception type,
one that is lost (the child hung, was killed or its value could not be encoded) contributes why.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Sequence
from typing import Any

from sandboxd.ledger.entry import canonical_json

Shape = Any  # a JSON-ready description of argument types, e.g. ["list", "int"] or ["tuple", ["int", "str"]]
MAX_SHAPE_DEPTH = 3
SIGNATURE_HEX = 16

_SCALARS: dict[str, tuple[Any, ...]] = {
    "int": (0, 1, -1, 7, 42, -13, 100, 3, 2, 1000, 5, -7, 9, 64, 11, 255),
    "float": (0.0, 1.5, -2.25, 3.75, 100.0, -0.5, 2.0, 1e-3, 7.25, -10.0, 0.1, 64.0, 3.0, -1.0, 9.5, 12.5),
    "bool": (False, True, True, False, True, False, False, True, True, False, True, False, False, True, True, False),
    "str": ("", "a", "hello", "Hello World", "abcabc", "12345", "a b c", "racecar", "xyz", "AAA", "tEsT",
            "!?", "ab", "zyxw", "  pad  ", "mississippi"),
    "bytes": (b"", b"a", b"hello", b"\x00\xff", b"abcabc", b"123", b"  ", b"xyz", b"A", b"bb", b"\x10",
              b"zz", b"q", b"ok", b"no", b"end"),
}  # fmt: skip
_SIZES = (0, 1, 3, 2, 4, 1, 5, 2, 3, 0, 4, 1, 2, 3, 5, 1)  # container lengths, per probe


def _shape(node: ast.AST, depth: int) -> Shape:
    if depth > MAX_SHAPE_DEPTH:
        return "any"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        node = node.operand
    if isinstance(node, ast.Constant):
        value = node.value
        name = "none" if value is None else type(value).__name__
        return name if name in _SCALARS or name == "none" else "any"
    if isinstance(node, ast.List | ast.Set):
        inner = _shape(node.elts[0], depth + 1) if node.elts else "any"
        return ["list" if isinstance(node, ast.List) else "set", inner]
    if isinstance(node, ast.Tuple):
        return ["tuple", [_shape(e, depth + 1) for e in node.elts]]
    if isinstance(node, ast.Dict):
        if node.keys and node.keys[0] is not None:
            return ["dict", _shape(node.keys[0], depth + 1), _shape(node.values[0], depth + 1)]
        return ["dict", "any", "any"]
    return "any"


def shape(arguments: str) -> Shape | None:
    """The types of ``f(<arguments>)``'s arguments, or ``None`` if the text does not parse as a call."""
    try:
        call = ast.parse(f"f({arguments})", mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if not isinstance(call, ast.Call):
        return None
    positional = [_shape(a, 1) if not isinstance(a, ast.Starred) else "any" for a in call.args]
    keywords = sorted([k.arg or "**", _shape(k.value, 1)] for k in call.keywords)
    return [positional, keywords]


def _value(kind: Shape, i: int) -> Any:
    if kind in ("none", "any"):
        return None
    if isinstance(kind, str):
        table = _SCALARS[kind]
        return table[i % len(table)]
    head = kind[0]
    if head == "tuple":
        return tuple(_value(part, i + k) for k, part in enumerate(kind[1]))
    size = _SIZES[i % len(_SIZES)]
    if head == "dict":
        return {_value(kind[1], i + k): _value(kind[2], i + 2 * k + 1) for k in range(size)}
    items = [_value(kind[1], i + 3 * k) for k in range(size)]
    if head == "set":
        try:
            return set(items)
        except TypeError:  # unhashable elements: a set of them cannot exist either
            return set()
    return items


def _dict_key_safe(kind: Shape) -> Shape:
    """Dict keys and set elements must be hashable: containers inside them become tuples of their type."""
    if isinstance(kind, list) and kind[0] in ("list", "set", "dict"):
        return "any"
    return kind


def _hashable(kind: Shape) -> Shape:
    if isinstance(kind, str):
        return kind
    if kind[0] == "tuple":
        return ["tuple", [_hashable(k) for k in kind[1]]]
    if kind[0] == "dict":
        return ["dict", _dict_key_safe(_hashable(kind[1])), _hashable(kind[2])]
    inner = _hashable(kind[1])
    return [kind[0], _dict_key_safe(inner) if kind[0] == "set" else inner]


def probe_texts(found: Shape, count: int) -> list[str]:
    """``count`` argument texts for ``f(...)``, the same for every program with the same shape."""
    positional, keywords = found
    positional = [_hashable(k) for k in positional]
    texts = []
    for i in range(count):
        parts = [_literal(_safe(kind, i + 5 * n)) for n, kind in enumerate(positional)]
        parts += [f"{name}={_literal(_safe(_hashable(kind), i + 7 * n))}" for n, (name, kind) in enumerate(keywords)
                  if name != "**"]  # fmt: skip
        texts.append(", ".join(parts))
    return texts


def _literal(value: Any) -> str:
    """``repr``, but with set elements sorted, so the text is the same in every process (hash seeds)."""
    if isinstance(value, set):
        return "{" + ", ".join(sorted(_literal(v) for v in value)) + "}" if value else "set()"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _safe(kind: Shape, i: int) -> Any:
    try:
        return _value(kind, i)
    except TypeError:  # an unhashable key built from an odd shape: probe with None instead
        return None


def signature(found: Shape, results: Sequence[Any]) -> str:
    """The output signature: a short hash of the shape and each probe's tagged result (or why it is lost)."""
    data = canonical_json([found, list(results)])
    return hashlib.sha256(data).hexdigest()[:SIGNATURE_HEX]
