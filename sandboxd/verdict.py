"""Verdicts: what execution says about one run, decided by a pure function on the trusted side."""

from __future__ import annotations

import enum
import signal
from dataclasses import dataclass

from .frame import ResultFrame


class Status(enum.StrEnum):
    """The status of one run. Only sandboxd bugs produce ``internal_error``; lost sandboxes produce
    ``infrastructure_error`` (docs/operations-faults.md)."""

    OK = "ok"  # exited normally with a valid result frame
    RUNTIME_ERROR = "runtime_error"  # raised, exited non-zero, crashed, or sent no valid frame
    TIMEOUT = "timeout"  # wall time (SIGKILL from the fork-server) or CPU time (RLIMIT_CPU)
    MEMORY_LIMIT = "memory_limit"  # RLIMIT_AS (MemoryError) or the container's memory cgroup
    OUTPUT_LIMIT = "output_limit"  # stdout, stderr or the result frame passed its cap
    SANDBOX_VIOLATION = "sandbox_violation"  # a syscall outside the allowlist (SIGSYS)
    INTERNAL_ERROR = "internal_error"  # a bug in sandboxd; never caused by a program
    # The sandbox was lost under the run twice (killed from outside, engine restart, fork-server
    # crash): neither the program's fault nor a sandboxd bug. Retry the run; never score it.
    INFRASTRUCTURE_ERROR = "infrastructure_error"
    VETOED = "vetoed"  # reserved for the watchdog


@dataclass(frozen=True)
class Termination:
    """How the child ended, as the fork-server observed it."""

    exit_code: int | None
    signal: int | None
    killed_by: str | None  # "wall" | "output" | None
    cpu_time_seconds: float
    cpu_limit_seconds: float


def classify(end: Termination, frame: ResultFrame | None) -> Status:
    """Decide the status from the termination and the (already verified) result frame."""
    if end.killed_by == "wall":
        return Status.TIMEOUT
    if end.killed_by == "output":
        return Status.OUTPUT_LIMIT
    if end.signal == signal.SIGSYS:
        return Status.SANDBOX_VIOLATION
    if end.signal == signal.SIGXCPU:
        return Status.TIMEOUT
    if end.signal == signal.SIGKILL:
        # Nobody inside the container can send SIGKILL to a child (kill is not allowed), so it is
        # either RLIMIT_CPU's hard limit or the cgroup OOM killer.
        return Status.TIMEOUT if end.cpu_time_seconds >= end.cpu_limit_seconds else Status.MEMORY_LIMIT
    if frame is None or end.signal is not None:
        return Status.RUNTIME_ERROR
    if frame.outcome == "exception" and frame.exc_type == "MemoryError" and frame.exc_builtin:
        return Status.MEMORY_LIMIT
    if frame.outcome == "ok" and end.exit_code == 0:
        return Status.OK
    if frame.outcome == "exit" and frame.exit_code == 0 and end.exit_code == 0:
        return Status.OK
    return Status.RUNTIME_ERROR
