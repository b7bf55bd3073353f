"""Reading the formal job's report and judging it, on the trusted side (pure; no I/O).

The report comes out of a sandbox that also ran model code, so it is data to validate, never a verdict:
its shape is checked strictly, its candidate inputs are re-parsed here as literals, and a difference only
counts once both programs, run again as ordinary ``calls`` jobs, return different values compared here
(:func:`confirm`). Wording: a search that finds nothing says "no counterexample found within <budget>".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sandboxd.azr.hardcoding import judge_pair
from sandboxd.azr.literal import NotLiteral, parse_literal
from sandboxd.canonical import DecodeError, decode
from sandboxd.run import RunResult
from sandboxd.verdict import Status
from sandboxd.watchdog.decision import Decision, decide
from sandboxd.watchdog.equivalence import finding, no_counterexample
from sandboxd.watchdog.rules import Mode

_NOT_THE_ANSWERS_FAULT = (Status.INTERNAL_ERROR, Status.INFRASTRUCTURE_ERROR)


class _Side(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    returns: str | None = None
    raises: str | None = None


class _Candidate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    args: list[str] = Field(max_length=64)
    reference: _Side
    answer: _Side


class Report(BaseModel):
    """The formal job's one value (see ``sandboxd/runner/formal.py``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    status: Literal["searched", "not_defined", "unavailable"]
    program: Literal["reference", "answer"] | None = None
    error: str | None = None
    paths: int = 0
    exhausted: bool = False
    nondeterministic: int = 0
    search_seconds: float = 0.0
    counterexamples: list[_Candidate] = Field(default_factory=list, max_length=8)


@dataclass(frozen=True)
class Candidates:
    """Inputs CrossHair reported as differences: to be confirmed by running both programs on them."""

    texts: list[str]
    searched: str  # what the search did, for the evidence


@dataclass(frozen=True)
class Failed:
    """The search run produced no report: to be attributed to the answer or the reference."""

    failure: str


def read_report(result: RunResult) -> Report | str:
    """The validated report, or why the run produced none."""
    if result.status is not Status.OK or result.frame is None:
        return f"{result.status.value}" + (f" ({result.detail})" if result.detail else "")
    frame = result.frame
    if frame.encode_error is not None or len(frame.values) != 1:
        return "no report in the result frame"
    try:
        return Report.model_validate(decode(frame.values[0]))
    except (DecodeError, ValidationError, TypeError, ValueError):
        return "a malformed report"


def candidate_texts(report: Report) -> list[str]:
    """The argument texts of the counterexamples, re-rendered from literals parsed here (never evaluated)."""
    texts: list[str] = []
    for candidate in report.counterexamples:
        try:
            values = [parse_literal(arg) for arg in candidate.args]
        except NotLiteral:
            continue
        text = ", ".join(repr(value) for value in values)
        if text not in texts:
            texts.append(text)
    return texts


def interpret(result: RunResult, budget_seconds: float, mode: Mode) -> Decision | Candidates | Failed:
    """The search run's outcome: a final decision, candidates to confirm, or a failure to attribute."""
    report = read_report(result)
    if isinstance(report, str):
        if result.status in _NOT_THE_ANSWERS_FAULT:
            return decide([finding("warn", f"not checked: the formal run failed ({report})")])
        return Failed(report)
    if report.status == "unavailable":
        message = "not checked: the runner image has no CrossHair/z3 (rebuild it: sandboxd image build)"
        return decide([finding("warn", message, report.error or "")])
    if report.status == "not_defined":
        if report.program == "answer":
            return decide(
                [finding(mode, "the answer does not define f inside the check", report.error or "")]
            )
        message = f"not checked: the reference program does not define f inside the check ({report.error})"
        return decide([finding("audit", message)])
    paths = f"{report.paths} path{'' if report.paths == 1 else 's'}"
    searched = f"CrossHair explored {paths} in {report.search_seconds:.2f} s"
    if report.exhausted:
        searched += ", then had no path left to explore"
    if report.nondeterministic:
        searched += f"; {report.nondeterministic} nondeterministic paths ignored"
    texts = candidate_texts(report)
    if not texts:
        return decide([finding("audit", no_counterexample(budget_seconds), searched)])
    return Candidates(texts, searched)


def confirm(
    candidates: Candidates, reference: RunResult, answer: RunResult, budget_seconds: float, mode: Mode
) -> Decision:
    """Both programs' values on the candidates, compared here: only a confirmed difference is a finding."""
    judged = judge_pair(candidates.texts, reference, answer, "enforce")
    if judged.mode == "enforce":
        message = "the answer differs from the reference program on an input found by CrossHair"
        return decide([finding(mode, message, judged.evidence)])
    message = (
        f"{no_counterexample(budget_seconds)}: the difference CrossHair reported did not reproduce when run"
    )
    return decide(
        [finding("audit", message, f"{candidates.searched}; candidates: {'; '.join(candidates.texts)}")]
    )
