"""Facts about a program, taken from its AST once and shared by every rule.

Import aliases are resolved, so ``import os as o; o.system()`` is the call ``os.system`` and
``from subprocess import run; run()`` is ``subprocess.run``. A method call on a value that is not an
imported name is recorded with ``?`` as its root (``?.split``). Nothing here runs or imports the program.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

_ATTRIBUTE_BUILTINS = frozenset({"getattr", "setattr", "hasattr", "delattr"})


@dataclass(frozen=True)
class Fact:
    name: str
    line: int
    col: int


@dataclass(frozen=True)
class Facts:
    source_bytes: int
    parsed: bool  # False: the source does not parse; only regex and size rules can judge it
    imports: tuple[Fact, ...] = ()
    calls: tuple[Fact, ...] = ()
    attributes: tuple[Fact, ...] = ()
    names: tuple[Fact, ...] = ()
    methods: tuple[Fact, ...] = ()
    ast_nodes: int = 0
    depth: int = 0


def extract(source: str) -> Facts:
    """The facts of ``source``; a source that does not parse yields ``parsed=False`` and its size only."""
    size = len(source.encode("utf-8", "surrogatepass"))
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return Facts(source_bytes=size, parsed=False)
    return _Collector(tree).facts(size)


def _at(node: ast.AST, name: str) -> Fact:
    return Fact(name, getattr(node, "lineno", 0), getattr(node, "col_offset", 0))


class _Collector:
    def __init__(self, tree: ast.Module) -> None:
        self.aliases: dict[str, str] = {}
        self.imports: list[Fact] = []
        self.calls: list[Fact] = []
        self.attributes: list[Fact] = []
        self.names: list[Fact] = []
        self.methods: list[Fact] = []
        self.nodes = 0
        self.depth = 0
        self._walk(tree)

    def facts(self, size: int) -> Facts:
        return Facts(
            source_bytes=size,
            parsed=True,
            imports=tuple(self.imports),
            calls=tuple(self.calls),
            attributes=tuple(self.attributes),
            names=tuple(self.names),
            methods=tuple(self.methods),
            ast_nodes=self.nodes,
            depth=self.depth,
        )

    def _walk(self, tree: ast.Module) -> None:
        # Iterative, so that deep programs cannot exhaust the trusted side's stack. Imports come first in
        # a program's own order, which is enough to resolve aliases for calls that follow them.
        stack: list[tuple[ast.AST, int]] = [(tree, 1)]
        while stack:
            node, depth = stack.pop()
            self.nodes += 1
            self.depth = max(self.depth, depth)
            self._visit(node)
            children = list(ast.iter_child_nodes(node))
            stack.extend((child, depth + 1) for child in reversed(children))

    def _visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                self.imports.append(_at(node, alias.name))
                local = alias.asname or alias.name.split(".")[0]
                self.aliases[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            self.imports.append(_at(node, node.module))
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                self.imports.append(_at(node, full))
                self.aliases[alias.asname or alias.name] = full
        elif isinstance(node, ast.Call):
            self._call(node)
        elif isinstance(node, ast.Attribute):
            self.attributes.append(_at(node, node.attr))
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            self.names.append(_at(node, node.id))
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    self.methods.append(_at(item, item.name))

    def _call(self, node: ast.Call) -> None:
        name = self._dotted(node.func)
        if name is None:
            return
        self.calls.append(_at(node, name))
        if name in _ATTRIBUTE_BUILTINS and len(node.args) >= 2:
            target = node.args[1]
            if isinstance(target, ast.Constant) and isinstance(target.value, str):
                self.attributes.append(_at(target, target.value))

    def _dotted(self, node: ast.expr) -> str | None:
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        if parts and node.id not in self.aliases:
            # A method call on a value (``s.split()``), not on a module: keep it apart from module calls
            # so that a variable named ``time`` never looks like the ``time`` module.
            parts.append("?")
        else:
            parts.append(self.aliases.get(node.id, node.id))
        return ".".join(reversed(parts))
