"""Facts about a program, taken from its AST once and shared by every rule.

Import aliases are resolved, so ``import os as o; o.system()`` is the call ``os.system`` and
``from subprocess import run; run()`` is ``subprocess.run``. A method call on a value that is not an
imported name is recorded with ``?`` as its root (``?.split``). Nothing here runs or imports the program.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
        # One iterative pre-order pass (deep programs cannot exhaust the trusted side's stack) that counts
        # nodes, tracks depth and dispatches on the node's exact type. Children are read straight from
        # ``_fields``, as ``ast.iter_child_nodes`` does, without its generators. Imports come first in a
        # program's own order, which is enough to resolve aliases for calls that follow them.
        visitors = self._visitors()
        node_type = ast.AST
        stack: list[tuple[ast.AST, int]] = [(tree, 1)]
        pop, push = stack.pop, stack.append
        nodes = deepest = 0
        while stack:
            node, depth = pop()
            nodes += 1
            deepest = max(deepest, depth)
            visit = visitors.get(type(node))
            if visit is not None:
                visit(node)
            children: list[ast.AST] = []
            for name in node._fields:
                value = getattr(node, name, None)
                if isinstance(value, node_type):
                    children.append(value)
                elif isinstance(value, list):
                    children.extend(item for item in value if isinstance(item, node_type))
            depth += 1
            for child in reversed(children):
                push((child, depth))
        self.nodes, self.depth = nodes, deepest

    def _visitors(self) -> dict[type[ast.AST], Callable[[Any], None]]:
        return {
            ast.Import: self._import,
            ast.ImportFrom: self._import_from,
            ast.Call: self._call,
            ast.Attribute: self._attribute,
            ast.Name: self._name,
            ast.ClassDef: self._class,
        }

    def _import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.imports.append(_at(node, alias.name))
            local = alias.asname or alias.name.split(".")[0]
            self.aliases[local] = alias.name if alias.asname else local

    def _import_from(self, node: ast.ImportFrom) -> None:
        if node.module and node.level == 0:
            self.imports.append(_at(node, node.module))
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                self.imports.append(_at(node, full))
                self.aliases[alias.asname or alias.name] = full

    def _attribute(self, node: ast.Attribute) -> None:
        self.attributes.append(_at(node, node.attr))

    def _name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.names.append(_at(node, node.id))

    def _class(self, node: ast.ClassDef) -> None:
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
