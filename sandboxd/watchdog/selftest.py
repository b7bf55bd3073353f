"""Inline rule tests: each ``invalid`` program must make its rule fire and no ``valid`` program may."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .checker import rule_findings
from .criteria import Pack
from .facts import extract
from .outcome import Outcome
from .postexec import outcome_findings
from .rules import OutcomeCase, render


@dataclass(frozen=True)
class CaseResult:
    pack: str
    rule_id: str
    expected: str  # "invalid" (must fire) or "valid" (must not fire)
    code: str  # the program, or the outcome as JSON for a ``post`` rule
    passed: bool


def run_inline_tests(packs: Iterable[Pack]) -> Iterator[CaseResult]:
    """Every inline case of every rule, judged by that rule alone, ignoring ``applies_to``."""
    for pack in packs:
        for rule in pack.rules:
            tests = rule.rule.tests
            cases = [("invalid", c) for c in tests.invalid] + [("valid", c) for c in tests.valid]
            for expected, case in cases:
                if isinstance(case, OutcomeCase):
                    code = case.model_dump_json(exclude_defaults=True)
                    fired = bool(outcome_findings(rule, Outcome.of_case(case)))
                else:
                    code = render(case)
                    fired = bool(rule_findings(rule, extract(code), code))
                yield CaseResult(pack.name, rule.rule.id, expected, code, fired == (expected == "invalid"))
