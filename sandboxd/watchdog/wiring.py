"""The watchdog in the request path (DESIGN.md §4 step 3): packs chosen by a sandbox policy, and the
public form of a decision that responses carry."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from sandboxd.exceptions import ConfigurationError

from .criteria import Pack
from .decision import Decision
from .packs import DEFAULT_PACK_DIR, PackError, load_packs


class WatchdogFinding(BaseModel):
    rule_id: str
    pack: str
    mode: Literal["enforce", "warn", "audit"]
    severity: Literal["low", "medium", "high", "critical"]
    message: str
    line: int = Field(description="1-based; 0 when the finding is about the whole program")
    col: int
    evidence: str


class WatchdogReport(BaseModel):
    """The static watchdog's decision on one program: ``veto`` means it never reached a container."""

    decision: Literal["allow", "warn", "veto"]
    findings: list[WatchdogFinding] = Field(default_factory=list)


def report(decision: Decision) -> WatchdogReport:
    return WatchdogReport(
        decision=decision.decision.value,
        findings=[
            WatchdogFinding(
                rule_id=f.rule_id,
                pack=f.pack,
                mode=f.mode,
                severity=f.severity,
                message=f.message,
                line=f.line,
                col=f.col,
                evidence=f.evidence,
            )
            for f in decision.findings
        ],
    )


def vetoed_detail(decision: Decision) -> str:
    """The one-line reason every endpoint gives for a veto: the vetoing rule ids."""
    rules = sorted({finding.rule_id for finding in decision.vetoing})
    return f"vetoed by the watchdog: {', '.join(rules)}"


def select_packs(directory: Path | None, names: tuple[str, ...], where: str) -> tuple[Pack, ...]:
    """The packs of ``directory`` (default ``policies/watchdog/``): the named ones, or those on by default.

    Raises :class:`ConfigurationError` naming ``where`` (the policy) when a pack is invalid or missing.
    """
    folder = directory or DEFAULT_PACK_DIR
    if not folder.is_dir():
        raise ConfigurationError(f"{where}: watchdog.packs_dir {folder} is not a directory")
    try:
        loaded = load_packs([folder])
    except PackError as exc:
        raise ConfigurationError(f"{where}: invalid watchdog packs:\n{exc}") from exc
    if not names:
        chosen = [pack for pack in loaded if pack.enabled_by_default]
    else:
        by_name = {pack.name: pack for pack in loaded}
        unknown = [name for name in names if name not in by_name]
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown watchdog packs {unknown} in {folder}; found {sorted(by_name)}"
            )
        chosen = [by_name[name] for name in names]
    if not chosen:
        raise ConfigurationError(f"{where}: watchdog is enabled but {folder} yields no packs")
    return tuple(chosen)
