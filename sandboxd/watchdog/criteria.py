"""A rule after its lists and macros are resolved and its regexes compiled: plain values, ready to match."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .rules import Rule


@dataclass(frozen=True)
class Names:
    """A set of name patterns: exact names in a set, wildcard patterns as compiled regexes."""

    exact: frozenset[str] = frozenset()
    wildcards: tuple[re.Pattern[str], ...] = ()
    prefix: bool = False  # imports: ``os`` also matches ``os.path``

    @classmethod
    def of(cls, patterns: Sequence[str], *, prefix: bool = False) -> Names:
        exact = frozenset(p for p in patterns if not _is_wild(p))
        wild = tuple(re.compile(fnmatch.translate(p)) for p in patterns if _is_wild(p))
        return cls(exact, wild, prefix)

    def __bool__(self) -> bool:
        return bool(self.exact or self.wildcards)

    def matches(self, name: str) -> bool:
        candidates = [name]
        if self.prefix:
            parts = name.split(".")
            candidates = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
        return any(c in self.exact or any(w.match(c) for w in self.wildcards) for c in candidates)


def _is_wild(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


@dataclass(frozen=True)
class Criteria:
    imports: Names = field(default_factory=Names)
    calls: Names = field(default_factory=Names)
    attributes: Names = field(default_factory=Names)
    names: Names = field(default_factory=Names)
    methods: Names = field(default_factory=Names)
    regex: tuple[re.Pattern[str], ...] = ()
    max_ast_nodes: int | None = None
    max_depth: int | None = None
    max_source_bytes: int | None = None


@dataclass(frozen=True)
class Exemptions:
    imports: Names = field(default_factory=Names)
    calls: Names = field(default_factory=Names)
    attributes: Names = field(default_factory=Names)
    names: Names = field(default_factory=Names)
    unless_calls: Names = field(default_factory=Names)


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    pack: str
    criteria: Criteria
    exemptions: Exemptions


@dataclass(frozen=True)
class Pack:
    """A loaded, validated pack. ``path`` is where it came from (for messages)."""

    name: str
    description: str
    enabled_by_default: bool
    path: str
    rules: tuple[CompiledRule, ...]
