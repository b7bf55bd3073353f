"""What the watchdog says about a program: ``allow``, ``warn`` or ``veto``, with the findings behind it."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from .rules import Mode, Severity


class DecisionKind(enum.StrEnum):
    ALLOW = "allow"  # no enforce or warn rule fired (audit findings may still be attached)
    WARN = "warn"  # a warn rule fired: findings are attached, the verdict stands
    VETO = "veto"  # an enforce rule fired: the verdict becomes ``vetoed``, reward 0


@dataclass(frozen=True)
class Finding:
    rule_id: str
    pack: str
    mode: Mode
    severity: Severity
    message: str
    line: int  # 1-based; 0 when the finding is about the whole program (a size cap)
    col: int
    evidence: str


def program_finding(rule_id: str, pack: str, mode: Mode, message: str, evidence: str = "") -> Finding:
    """A finding about a whole program from a check that runs it (no line): high severity unless it is
    audit-only, evidence cut to 500 characters."""
    severity: Severity = "high" if mode != "audit" else "low"
    return Finding(rule_id, pack, mode, severity, message, 0, 0, evidence[:500])


@dataclass(frozen=True)
class Decision:
    decision: DecisionKind
    findings: tuple[Finding, ...] = ()

    @property
    def vetoing(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.mode == "enforce")


def decide(findings: Iterable[Finding]) -> Decision:
    """Any enforce finding vetoes; otherwise any warn finding warns; audit findings never change the result."""
    found = tuple(findings)
    modes = {f.mode for f in found}
    if "enforce" in modes:
        return Decision(DecisionKind.VETO, found)
    if "warn" in modes:
        return Decision(DecisionKind.WARN, found)
    return Decision(DecisionKind.ALLOW, found)


def combine(*decisions: Decision | None) -> Decision | None:
    """One decision from the phases that ran (static, post, semantic); None when none ran."""
    ran = [d for d in decisions if d is not None]
    if not ran:
        return None
    return decide(f for d in ran for f in d.findings)
