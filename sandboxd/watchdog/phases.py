"""Which ``match`` fields and inline test cases belong to which phase of a rule.

``static`` rules read the source before execution; ``post`` rules read the run's outcome after it. A field
of the other phase would silently never match, so the loader rejects it with file, line and field.
"""

from __future__ import annotations

from collections.abc import Iterator

from .rules import Match, OutcomeCase, Rule

Loc = tuple[str | int, ...]

STATIC_FIELDS = (
    "imports",
    "calls",
    "attributes",
    "names",
    "methods",
    "regex",
    "max_ast_nodes",
    "max_depth",
    "max_source_bytes",
    "pattern",
    "not_pattern",
)
POST_FIELDS = (
    "statuses",
    "stdout_regex",
    "stderr_regex",
    "max_cpu_time_seconds",
    "max_wall_time_seconds",
    "max_peak_memory_bytes",
    "max_output_bytes",
)


def phase_problems(rule: Rule, loc: Loc, blocks: list[tuple[Match, Loc]]) -> Iterator[tuple[Loc, str]]:
    """``(location, message)`` for every field or test case of the rule at ``loc`` that does not fit its phase."""
    foreign = POST_FIELDS if rule.phase == "static" else STATIC_FIELDS
    for block, where in blocks:
        for name in foreign:
            if getattr(block, name) not in ((), None):
                yield (*where, name), f"{name} is not a {rule.phase} fact (this rule has phase {rule.phase})"
    if rule.phase == "post":
        for name, value in rule.exceptions:
            if value:
                yield (*loc, "exceptions", name), "post rules take no exceptions"
    for kind in ("invalid", "valid"):
        for k, case in enumerate(getattr(rule.tests, kind)):
            if (rule.phase == "post") != isinstance(case, OutcomeCase):
                want = "an outcome mapping (status, stdout, ...)" if rule.phase == "post" else "a program"
                yield (*loc, "tests", kind, k), f"a {rule.phase} rule's test case is {want}"
