"""Loading watchdog packs: YAML -> :class:`PackFile` -> resolved :class:`Pack`, with errors that name
the file, the line and the field (``policies/watchdog/x.yaml:12: rules[0].mode: Input should be ...``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import ValidationError

from sandboxd.exceptions import ConfigurationError

from .criteria import CompiledRule, Criteria, Exemptions, Names, Pack, Structural
from .patterns import compile_pattern, pattern_problem
from .phases import phase_problems
from .plugins import bind_plugins
from .rules import Match, PackFile, Rule

_N = TypeVar("_N", int, float)

DEFAULT_PACK_DIR = Path(__file__).resolve().parents[2] / "policies" / "watchdog"

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    file: str
    line: int  # 0 when unknown
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class PackError(ConfigurationError):
    """A watchdog pack is invalid; ``problems`` lists every mistake found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def load_pack(path: Path) -> Pack:
    """Load and validate one pack file; raise :class:`PackError` listing every problem."""
    return parse_pack(path.read_text(encoding="utf-8"), str(path))


def load_packs(paths: Iterable[Path]) -> list[Pack]:
    """Load several files (or every ``*.yaml`` of a directory); collect the problems of all of them."""
    packs: list[Pack] = []
    problems: list[Problem] = []
    for path in paths:
        for file in sorted(path.glob("*.yaml")) if path.is_dir() else [path]:
            try:
                packs.append(load_pack(file))
            except PackError as exc:
                problems.extend(exc.problems)
    if problems:
        raise PackError(problems)
    return packs


def default_packs(directory: Path = DEFAULT_PACK_DIR) -> list[Pack]:
    """The shipped packs that are on by default (optional profiles such as ``azr-compat`` are left out)."""
    return [pack for pack in load_packs([directory]) if pack.enabled_by_default]


def parse_pack(text: str, file: str) -> Pack:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PackError([Problem(file, mark.line + 1 if mark else 0, "", f"not valid YAML: {exc}")]) from None
    if not isinstance(data, dict):
        raise PackError([Problem(file, 1, "", "a pack is a YAML mapping")])
    try:
        spec = PackFile.model_validate(data)
    except ValidationError as exc:
        problems = [
            Problem(file, _line(root, err["loc"]), _dotted(err["loc"]), err["msg"]) for err in exc.errors()
        ]
        raise PackError(problems) from None
    return _Resolver(spec, file, root).pack()


class _Resolver:
    def __init__(self, spec: PackFile, file: str, root: yaml.Node | None) -> None:
        self.spec, self.file, self.root = spec, file, root
        self.problems: list[Problem] = []

    def pack(self) -> Pack:
        rules: list[CompiledRule] = []
        seen: set[str] = set()
        for i, rule in enumerate(self.spec.rules):
            if rule.id in seen:
                self._problem(("rules", i, "id"), f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
            rules.append(self._rule(rule, ("rules", i)))
        for name, macro in self.spec.macros.items():
            if macro.macros:
                self._problem(("macros", name, "macros"), "a macro cannot use other macros")
        if not self.spec.rules and not self.spec.plugins:
            self._problem(("rules",), "a pack needs at least one rule or plugin")
        plugins = bind_plugins(self.spec.plugins, self._problem)
        if self.problems:
            raise PackError(self.problems)
        s = self.spec
        return Pack(s.name, s.description, s.enabled_by_default, self.file, tuple(rules), plugins)

    def _rule(self, rule: Rule, loc: Loc) -> CompiledRule:
        blocks: list[tuple[Match, Loc]] = [(rule.match, (*loc, "match"))]
        for j, name in enumerate(rule.match.macros):
            if name in self.spec.macros:
                blocks.append((self.spec.macros[name], ("macros", name)))
            else:
                self._problem((*loc, "match", "macros", j), f"unknown macro {name!r}")
        x = rule.exceptions
        xloc = (*loc, "exceptions")
        criteria = Criteria(
            imports=Names.of(self._expand(blocks, "imports"), prefix=True),
            calls=Names.of(self._expand(blocks, "calls")),
            attributes=Names.of(self._expand(blocks, "attributes")),
            names=Names.of(self._expand(blocks, "names")),
            methods=Names.of(self._expand(blocks, "methods")),
            regex=tuple(self._regexes(blocks)),
            max_ast_nodes=_least(b.max_ast_nodes for b, _ in blocks),
            max_depth=_least(b.max_depth for b, _ in blocks),
            max_source_bytes=_least(b.max_source_bytes for b, _ in blocks),
            structural=tuple(self._structural(blocks)),
            statuses=frozenset(s for b, _ in blocks for s in b.statuses),
            stdout_regex=tuple(self._regexes(blocks, "stdout_regex")),
            stderr_regex=tuple(self._regexes(blocks, "stderr_regex")),
            max_cpu_time_seconds=_least(b.max_cpu_time_seconds for b, _ in blocks),
            max_wall_time_seconds=_least(b.max_wall_time_seconds for b, _ in blocks),
            max_peak_memory_bytes=_least(b.max_peak_memory_bytes for b, _ in blocks),
            max_output_bytes=_least(b.max_output_bytes for b, _ in blocks),
        )
        if not _any_criterion(criteria):
            self._problem((*loc, "match"), "the match block lists no facts and no caps")
        for field_name, problem in phase_problems(rule, loc, blocks):
            self._problem(field_name, problem)
        exemptions = Exemptions(
            imports=Names.of(self._names(x.imports, (*xloc, "imports")), prefix=True),
            calls=Names.of(self._names(x.calls, (*xloc, "calls"))),
            attributes=Names.of(self._names(x.attributes, (*xloc, "attributes"))),
            names=Names.of(self._names(x.names, (*xloc, "names"))),
            unless_calls=Names.of(self._names(x.unless_calls, (*xloc, "unless_calls"))),
        )
        return CompiledRule(rule, self.spec.name, criteria, exemptions)

    def _expand(self, blocks: list[tuple[Match, Loc]], fact: str) -> tuple[str, ...]:
        out: list[str] = []
        for block, loc in blocks:
            out.extend(self._names(getattr(block, fact), (*loc, fact)))
        return tuple(out)

    def _names(self, entries: tuple[str, ...], loc: Loc) -> list[str]:
        out: list[str] = []
        for k, entry in enumerate(entries):
            if not entry.startswith("$"):
                out.append(entry)
            elif entry[1:] in self.spec.lists:
                out.extend(self.spec.lists[entry[1:]])
            else:
                self._problem((*loc, k), f"unknown list {entry[1:]!r}")
        return out

    def _regexes(self, blocks: list[tuple[Match, Loc]], fact: str = "regex") -> list[re.Pattern[str]]:
        out: list[re.Pattern[str]] = []
        for block, loc in blocks:
            for k, pattern in enumerate(getattr(block, fact)):
                try:
                    out.append(re.compile(pattern))
                except re.error as exc:
                    self._problem((*loc, fact, k), f"invalid regex: {exc}")
        return out

    def _structural(self, blocks: list[tuple[Match, Loc]]) -> list[Structural]:
        out: list[Structural] = []
        for block, loc in blocks:
            for fact in ("pattern", "not_pattern"):
                for k, pattern in enumerate(getattr(block, fact)):
                    problem = pattern_problem(pattern)
                    if problem is not None:
                        self._problem((*loc, fact, k), problem)
            if block.not_pattern and not block.pattern:
                self._problem((*loc, "not_pattern"), "not_pattern needs a pattern in the same block")
            out.extend(compile_pattern(p, block.not_pattern) for p in block.pattern)
        return out

    def _problem(self, loc: Loc, message: str) -> None:
        self.problems.append(Problem(self.file, _line(self.root, loc), _dotted(loc), message))


def _any_criterion(c: Criteria) -> bool:
    names = (c.imports, c.calls, c.attributes, c.names, c.methods)
    caps = (c.max_ast_nodes, c.max_depth, c.max_source_bytes)
    post = (c.max_cpu_time_seconds, c.max_wall_time_seconds, c.max_peak_memory_bytes, c.max_output_bytes)
    texts = (c.regex, c.structural, c.statuses, c.stdout_regex, c.stderr_regex)
    return any(names) or any(texts) or any(cap is not None for cap in (*caps, *post))


def _least(values: Iterable[_N | None]) -> _N | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line(root: yaml.Node | None, loc: Loc) -> int:
    """The 1-based line of the deepest YAML node on ``loc`` (pydantic's error path), 0 if none."""
    node = root
    line = node.start_mark.line + 1 if node is not None else 0
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
            if child is None:  # the key itself is the problem (extra field): point at the key
                key = next((k for k, _ in node.value if getattr(k, "value", None) == str(part)), None)
                return key.start_mark.line + 1 if key is not None else line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            return line
        node, line = child, child.start_mark.line + 1
    return line
