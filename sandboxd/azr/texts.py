"""Trusted-side checks on model text, by parsing only (``ast``), never evaluating.

AZR writes inputs as argument text that is pasted into ``f(<text>)``. Pasting is only safe after
proving that the text is exactly the arguments of one call: ``1) or True or (1`` parses as a
boolean expression around two calls, so it is rejected here, before anything runs. The texts
are then compiled and evaluated inside the sandbox only.
"""

from __future__ import annotations

import ast
import warnings

MAX_NODES = 20_000

# Names that reach the interpreter's machinery rather than denote a value. Blocking them in argument
# and answer texts stops answers that rebind ``f``, read the nonce or build lying classes.
FORBIDDEN_NAMES = frozenset(
    {
        "eval", "exec", "compile", "open", "input", "breakpoint", "globals", "locals", "vars", "getattr",
        "setattr", "delattr", "type", "object", "super", "classmethod", "staticmethod", "property",
        "memoryview", "exit", "quit", "help", "print",
    }
)  # fmt: skip


class TextRejected(ValueError):
    """The text is not of the required shape; the message says why."""


def _parse(source: str, mode: str, label: str) -> ast.AST:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. invalid escapes: the text's problem, not a rejection
            tree = ast.parse(source, mode=mode)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise TextRejected(f"{label} does not parse: {exc.__class__.__name__}") from None
    return tree


def _check_plain(tree: ast.AST, label: str) -> None:
    """No walrus, starred unpacking, yields, dunder or private names/attributes, or forbidden names."""
    for count, node in enumerate(ast.walk(tree)):
        if count > MAX_NODES:
            raise TextRejected(f"{label} is too large")
        if isinstance(node, ast.NamedExpr | ast.Starred | ast.Yield | ast.YieldFrom | ast.Await):
            raise TextRejected(f"{label} may not use {type(node).__name__}")
        if isinstance(node, ast.Name) and (node.id.startswith("__") or node.id in FORBIDDEN_NAMES):
            raise TextRejected(f"{label} may not use the name {node.id!r}")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise TextRejected(f"{label} may not access {node.attr!r}")
        if isinstance(node, ast.keyword) and node.arg is None:
            raise TextRejected(f"{label} may not use ** unpacking")


def check_arguments(text: str) -> None:
    """Accept only text that is exactly the plain arguments of one call ``f(<text>)``."""
    tree = _parse(f"f({text})", "eval", "argument text")
    assert isinstance(tree, ast.Expression)
    call = tree.body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "f"):
        raise TextRejected("argument text must be exactly the arguments of one call")
    lines = f"f({text})".splitlines()
    # ast offsets count UTF-8 bytes: the call must end exactly at the end of the source.
    if call.end_lineno != len(lines) or call.end_col_offset != len(lines[-1].encode("utf-8")):
        raise TextRejected("argument text must be exactly the arguments of one call")
    for node in [*call.args, *call.keywords]:
        _check_plain(node, "argument text")


def check_expression(text: str) -> None:
    """Accept one plain expression (a predicted or recorded output)."""
    if not text.strip():
        raise TextRejected("expression is empty")
    tree = _parse(text, "eval", "expression")
    _check_plain(tree, "expression")


def check_imports(lines: list[str]) -> None:
    """Each entry must be only ``import`` / ``from ... import`` statements."""
    for line in lines:
        tree = _parse(line, "exec", "import line")
        assert isinstance(tree, ast.Module)
        if not tree.body or not all(isinstance(node, ast.Import | ast.ImportFrom) for node in tree.body):
            raise TextRejected(f"import line is not an import statement: {line[:80]!r}")


def check_program(source: str, entry: str = "f") -> None:
    """The program must parse and define ``entry`` at module level. (Syntax only; it runs in the sandbox.)"""
    tree = _parse(source, "exec", "program")
    assert isinstance(tree, ast.Module)
    defined = any(
        (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == entry)
        or (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == entry for t in node.targets)
        )
        for node in tree.body
    )
    if not defined:
        raise TextRejected(f"program does not define {entry}")


def parse_import_list(value: str | list[str]) -> list[str]:
    """AZR stores imports as a list, or as a string holding a Python list literal; parse, never eval."""
    if isinstance(value, list):
        return [str(item) for item in value]
    text = value.strip()
    if not text:
        return []
    tree = _parse(text, "eval", "imports")
    assert isinstance(tree, ast.Expression)
    if not isinstance(tree.body, ast.List | ast.Tuple) or not all(
        isinstance(item, ast.Constant) and isinstance(item.value, str) for item in tree.body.elts
    ):
        raise TextRejected("imports must be a list of strings")
    return [str(item.value) for item in tree.body.elts if isinstance(item, ast.Constant)]
