"""A rule after its lists and macros are resolved and its regexes compiled: plain values, ready to match."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .rules import PluginUse, Rule


@dataclass(frozen=True)
class Names:
    """A set of name patterns: exact names in a set, wildcard patterns as compiled regexes."""

    exact: frozenset[str] = frozenset()
    wildcards: tuple[re.Pattern[str], ...] = ()
    prefix: bool = False  # imports: ``os`` also matches ``os.path``
    source: frozenset[str] = (
        frozenset()
    )  # the patterns as written (after list expansion), for ``policy diff``

    @classmethod
    def of(cls, patterns: Sequence[str], *, prefix: bool = False) -> Names:
        exact = frozenset(p for p in patterns if not _is_wild(p))
        wild = tuple(re.compile(fnmatch.translate(p)) for p in patterns if _is_wild(p))
        return cls(exact, wild, prefix, frozenset(patterns))

    def __bool__(self) -> bool:
        return bool(self.exact or self.wildcards)

    def matches(self, name: str) -> bool:
        if not self.prefix:  # the common case, without building a candidate list
            return name in self.exact or any(w.match(name) for w in self.wildcards)
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
    structural: tuple[Structural, ...] = ()  # ast-grep patterns (sandboxd/watchdog/patterns.py)
    # Phase ``post`` (sandboxd/watchdog/postexec.py)
    statuses: frozenset[str] = frozenset()
    stdout_regex: tuple[re.Pattern[str], ...] = ()
    stderr_regex: tuple[re.Pattern[str], ...] = ()
    max_cpu_time_seconds: float | None = None
    max_wall_time_seconds: float | None = None
    max_peak_memory_bytes: int | None = None
    max_output_bytes: int | None = None


@dataclass(frozen=True)
class Structural:
    """One ast-grep pattern with the ``not_pattern`` of its rule folded in, as an ast-grep rule config."""

    pattern: str
    config: Mapping[str, Any] = field(hash=False, compare=False)
    anchors: tuple[str, ...] = ()  # words every match contains: a source without one is not parsed


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
    plugins: tuple[PluginBinding, ...] = ()  # plugin checks enabled by name (sandboxd/watchdog/plugins.py)


@dataclass(frozen=True)
class PluginBinding:
    """A loaded plugin check as a pack enabled it: the pack's mode and scope apply to its findings."""

    use: PluginUse
    check: Any = field(hash=False, compare=False)  # a ``sandboxd.watchdog.plugins.WatchdogCheck``
