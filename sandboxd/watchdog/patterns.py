"""Structural patterns: ``match.pattern`` entries are ast-grep patterns on the Python grammar.

A pattern such as ``type($NAME, $BASES, $NAMESPACE)`` matches the *shape* of code, which the flat AST facts
cannot: ``type(x)`` is not ``type(name, bases, dict)``, and ``__eq__ = lambda s, o: True`` in a class body is
an override that defines no method. ast-grep (tree-sitter) only parses the source; nothing is run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any, cast

from ast_grep_py import Config, SgNode, SgRoot

from .criteria import Structural

LANGUAGE = "python"
_METAVARIABLE = re.compile(r"\$+[A-Z_][A-Z0-9_]*")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def compile_pattern(pattern: str, not_patterns: Sequence[str]) -> Structural:
    """An ast-grep rule config: ``pattern``, unless the hit lies inside a node matching a ``not_pattern``."""
    rule: dict[str, Any] = {"pattern": pattern}
    if not_patterns:
        rule["not"] = {"inside": {"any": [{"pattern": p} for p in not_patterns], "stopBy": "end"}}
    words = _WORD.findall(_METAVARIABLE.sub(" ", pattern))
    return Structural(pattern, {"rule": rule}, tuple(dict.fromkeys(words)))


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable ast-grep pattern, or None when it is."""
    # ast-grep reads metavariables after swapping ``$`` for its expando character; so must this check.
    if SgRoot(pattern.replace("$", "µ"), LANGUAGE).root().find(kind="ERROR") is not None:
        return "the pattern does not parse as Python"
    try:
        SgRoot("", LANGUAGE).root().find_all(pattern=pattern)
    except RuntimeError as exc:  # ast-grep reports bad patterns (a standalone $$$) as RuntimeError
        lines = [line.strip() for line in str(exc).split("Stack backtrace")[0].splitlines() if line.strip()]
        return f"invalid ast-grep pattern: {lines[-1] if lines else exc}"
    return None


class Tree:
    """The source parsed by tree-sitter on first use; rules without patterns never pay for the parse."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._root: SgNode | None = None

    def hits(self, structural: Structural) -> Iterator[tuple[int, int, str]]:
        """``(line, col, evidence)`` for each node the pattern matches (1-based line, 0-based column)."""
        if not all(word in self.source for word in structural.anchors):
            return  # a match contains every literal word of its pattern: no need to parse
        if self._root is None:
            self._root = SgRoot(self.source, LANGUAGE).root()
        for node in self._root.find_all(cast(Config, structural.config)):
            start = node.range().start
            text = " ".join(node.text().split())
            yield start.line + 1, start.column, f"pattern {structural.pattern!r} matched {text[:80]!r}"
