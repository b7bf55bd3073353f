"""Post-execution checks (DESIGN.md §4 step 6): rules with ``phase: post`` judge a run's outcome.

Pure, like the static check: ``check_outcome(outcome, packs, role, task_type)`` reads the status, usage and
output of a run that already happened and returns a :class:`Decision`. A ``post`` rule fires when **any** of
its facts holds: the status is one of ``statuses``, a ``stdout_regex``/``stderr_regex`` matches, or a usage
cap (``max_cpu_time_seconds``, ``max_wall_time_seconds``, ``max_peak_memory_bytes``, ``max_output_bytes``)
is exceeded. Plugins of phase ``post`` see the same outcome.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from .checker import applies, bounded
from .criteria import CompiledRule, Pack
from .decision import Decision, Finding, decide
from .outcome import Outcome
from .plugins import CheckContext, plugin_findings
from .rules import Role


def check_outcome(
    outcome: Outcome, packs: Iterable[Pack], role: Role, task_type: str | None = None, source: str = ""
) -> Decision:
    """Run every ``post`` rule and plugin of ``packs`` that applies to ``role`` and ``task_type``."""
    findings: list[Finding] = []
    for pack in packs:
        for rule in pack.rules:
            if rule.rule.phase == "post" and applies(rule, role, task_type):
                findings.extend(outcome_findings(rule, outcome))
        if pack.plugins:
            context = CheckContext(source, role, task_type, outcome)
            findings.extend(plugin_findings(pack.plugins, pack.name, "post", context))
    return decide(findings)


def has_post_checks(packs: Iterable[Pack]) -> bool:
    """Is there anything to run after execution? (Spares the request path when there is not.)"""
    return any(
        any(rule.rule.phase == "post" for rule in pack.rules)
        or any(binding.check.phase == "post" for binding in pack.plugins)
        for pack in packs
    )


def outcome_findings(rule: CompiledRule, outcome: Outcome) -> list[Finding]:
    """The findings of one ``post`` rule on one outcome, bounded like the static ones."""
    return bounded(rule, _evidence(rule, outcome))


def _evidence(rule: CompiledRule, outcome: Outcome) -> Iterator[tuple[int, int, str]]:
    c = rule.criteria
    if outcome.status in c.statuses:
        yield 0, 0, f"status {outcome.status}"
    yield from _texts("stdout", outcome.stdout, c.stdout_regex)
    yield from _texts("stderr", outcome.stderr, c.stderr_regex)
    output_bytes = len(outcome.stdout.encode("utf-8", "surrogatepass")) + len(
        outcome.stderr.encode("utf-8", "surrogatepass")
    )
    caps = (
        ("cpu_time_seconds", outcome.cpu_time_seconds, c.max_cpu_time_seconds),
        ("wall_time_seconds", outcome.wall_time_seconds, c.max_wall_time_seconds),
        ("peak_memory_bytes", outcome.peak_memory_bytes, c.max_peak_memory_bytes),
        ("output_bytes", output_bytes, c.max_output_bytes),
    )
    for label, value, cap in caps:
        if cap is not None and value > cap:
            yield 0, 0, f"{label}={value} > {cap}"


def _texts(stream: str, text: str, patterns: tuple[re.Pattern[str], ...]) -> Iterator[tuple[int, int, str]]:
    for pattern in patterns:
        for hit in pattern.finditer(text):
            line = text.count("\n", 0, hit.start()) + 1
            yield line, 0, f"{stream} matched {pattern.pattern!r}: {hit.group(0)[:80]!r}"
