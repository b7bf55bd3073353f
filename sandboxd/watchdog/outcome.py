"""What a run left behind, as the post-execution checks see it: plain values, no model objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .rules import OutcomeCase

if TYPE_CHECKING:
    from sandboxd.run import RunResult


@dataclass(frozen=True)
class Outcome:
    """The outcome of one run: its status (``sandboxd.verdict.Status`` value), output and usage."""

    status: str
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    cpu_time_seconds: float = 0.0
    wall_time_seconds: float = 0.0
    peak_memory_bytes: int = 0

    @classmethod
    def of_case(cls, case: OutcomeCase) -> Outcome:
        """An inline test case of a ``post`` rule as an outcome."""
        return cls(
            status=case.status,
            stdout=case.stdout,
            stderr=case.stderr,
            exit_code=case.exit_code,
            cpu_time_seconds=case.cpu_time_seconds,
            wall_time_seconds=case.wall_time_seconds,
            peak_memory_bytes=case.peak_memory_bytes,
        )


def outcome_of(result: RunResult) -> Outcome:
    """The outcome of a finished run, as the post-execution checks read it."""
    return Outcome(
        status=result.status.value,
        stdout=result.stdout,
        stderr=result.stderr,
        exit_code=result.exit_code,
        cpu_time_seconds=result.cpu_time_seconds,
        wall_time_seconds=result.wall_time_seconds,
        peak_memory_bytes=result.peak_memory_bytes,
    )
