"""The watchdog rule format, as written in YAML: one frozen model per block, ``extra="forbid"`` everywhere.

These models hold what the author wrote. Names of ``lists`` (``$name``) and ``macros`` are still unresolved
here; :mod:`sandboxd.watchdog.packs` resolves them into :class:`sandboxd.watchdog.criteria.Criteria`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Mode = Literal["enforce", "warn", "audit"]  # enforce = veto; warn = attach findings; audit = record only
Severity = Literal["low", "medium", "high", "critical"]
Role = Literal["proposer", "solver"]
RuleId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]{0,79}$")]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
Pattern = Annotated[str, Field(min_length=1, max_length=200)]
AstPattern = Annotated[
    str, Field(min_length=1, max_length=2000)
]  # an ast-grep pattern (``type($A, $B, $C)``)
Phase = Literal["static", "post"]  # static: the source, before execution; post: the run's outcome, after it
RunStatus = Literal[
    "ok", "runtime_error", "timeout", "memory_limit", "output_limit", "sandbox_violation", "internal_error"
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Match(_Frozen):
    """Facts about a program; the rule fires when **any** listed fact is present (or any cap is exceeded).

    Entries of the name lists may be ``$list_name`` (expanded from the pack's ``lists``) and may use shell
    wildcards (``random.*``). ``imports`` also match submodules: ``os`` matches ``import os.path``.
    """

    macros: tuple[Name, ...] = ()  # named match blocks from the pack's ``macros``, OR-ed with this one
    imports: tuple[Pattern, ...] = ()  # module names; ``from a import b`` yields ``a`` and ``a.b``
    calls: tuple[Pattern, ...] = ()  # called names, dotted and with import aliases resolved (``os.system``)
    attributes: tuple[Pattern, ...] = ()  # attribute names (``__subclasses__``), also via getattr(x, "...")
    names: tuple[Pattern, ...] = ()  # bare names that are read (``__builtins__``, ``SystemExit``)
    methods: tuple[Pattern, ...] = ()  # functions defined directly in a class body (``__eq__``)
    regex: tuple[Pattern, ...] = ()  # Python regexes searched in the source text
    max_ast_nodes: int | None = Field(None, ge=1)
    max_depth: int | None = Field(None, ge=1)  # nesting depth of the AST
    max_source_bytes: int | None = Field(None, ge=1)  # UTF-8 size of the source
    # Structural patterns (ast-grep, Python grammar; ``$X`` one node, ``$$$X`` any number of nodes).
    pattern: tuple[AstPattern, ...] = ()
    not_pattern: tuple[
        AstPattern, ...
    ] = ()  # a ``pattern`` hit inside a node matching one of these is no evidence
    # Phase ``post`` only: facts about the run's outcome (sandboxd/watchdog/postexec.py).
    statuses: tuple[RunStatus, ...] = ()  # the run ended with one of these statuses
    stdout_regex: tuple[Pattern, ...] = ()
    stderr_regex: tuple[Pattern, ...] = ()
    max_cpu_time_seconds: float | None = Field(None, gt=0)
    max_wall_time_seconds: float | None = Field(None, gt=0)
    max_peak_memory_bytes: int | None = Field(None, ge=1)
    max_output_bytes: int | None = Field(None, ge=1)  # stdout plus stderr, UTF-8


class Exceptions(_Frozen):
    """Facts that never count as evidence, and calls whose presence switches the rule off."""

    imports: tuple[Pattern, ...] = ()  # allowed modules (same matching as ``match.imports``)
    calls: tuple[Pattern, ...] = ()
    attributes: tuple[Pattern, ...] = ()
    names: tuple[Pattern, ...] = ()
    unless_calls: tuple[Pattern, ...] = ()  # e.g. ``random.seed``: its presence disables the rule


class AppliesTo(_Frozen):
    """Who the rule judges. An empty ``task_types`` means every task type (the restrictive default)."""

    roles: tuple[Role, ...] = Field(("proposer", "solver"), min_length=1)
    task_types: tuple[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")], ...] = ()


class Generated(_Frozen):
    """A long test program written short: ``prefix + repeat * times + suffix`` (for size caps)."""

    prefix: str = ""
    repeat: str = Field(min_length=1)
    times: int = Field(ge=1, le=1_000_000)
    suffix: str = ""

    def render(self) -> str:
        return self.prefix + self.repeat * self.times + self.suffix


class OutcomeCase(_Frozen):
    """An inline test case of a ``post`` rule: the outcome of a run (nothing is executed)."""

    status: RunStatus = "ok"
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = 0
    cpu_time_seconds: float = Field(0.0, ge=0)
    wall_time_seconds: float = Field(0.0, ge=0)
    peak_memory_bytes: int = Field(0, ge=0)


TestCase = str | Generated | OutcomeCase


def render(case: str | Generated) -> str:
    return case if isinstance(case, str) else case.render()


class RuleTests(_Frozen):
    """Inline tests: every ``invalid`` program must make the rule fire; no ``valid`` program may."""

    invalid: tuple[TestCase, ...] = Field(min_length=1)
    valid: tuple[TestCase, ...] = Field(min_length=1)


class Rule(_Frozen):
    id: RuleId
    description: str = Field(min_length=1)
    phase: Phase = "static"  # ``post`` rules judge the run's outcome (statuses, usage, output)
    mode: Mode = "enforce"
    severity: Severity = "high"
    tags: tuple[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]{0,62}$")], ...] = ()
    applies_to: AppliesTo = AppliesTo()
    match: Match
    exceptions: Exceptions = Exceptions()
    tests: RuleTests  # required: a rule without tests cannot be reviewed


class PluginUse(_Frozen):
    """A plugin check enabled by name; the pack decides the mode of its findings."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]{0,62}$")]  # the entry point's name
    mode: Mode = "enforce"
    applies_to: AppliesTo = AppliesTo()


class PackFile(_Frozen):
    """One YAML file under ``policies/watchdog/``."""

    schema_version: Literal[1]
    kind: Literal["watchdog"]
    name: Name
    description: str = Field(min_length=1)
    enabled_by_default: bool = True  # optional profiles (such as AZR compatibility) set this to false
    lists: dict[Name, tuple[Pattern, ...]] = {}
    macros: dict[Name, Match] = {}
    rules: tuple[Rule, ...] = ()  # a pack needs at least one rule or plugin
    plugins: tuple[PluginUse, ...] = ()  # checks from the ``sandboxd.watchdog`` entry-point group
