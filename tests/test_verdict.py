"""The verdict is a pure function of how the child ended and its verified result frame."""

from __future__ import annotations

import signal

import pytest

from sandboxd.frame import ResultFrame
from sandboxd.verdict import Status, Termination, classify


def frame(
    outcome: str = "ok", exc_type: str | None = None, exit_code: int = 0, builtin: bool = True
) -> ResultFrame:
    return ResultFrame(outcome, exc_type, builtin, exit_code, False, None, ())


def end(
    exit_code: int | None = 0, sig: int | None = None, killed_by: str | None = None, cpu: float = 0.1
) -> Termination:
    return Termination(
        exit_code=exit_code, signal=sig, killed_by=killed_by, cpu_time_seconds=cpu, cpu_limit_seconds=2.0
    )


@pytest.mark.parametrize(
    ("termination", "result_frame", "expected"),
    [
        pytest.param(end(), frame(), Status.OK, id="clean-exit"),
        pytest.param(end(exit_code=0), None, Status.RUNTIME_ERROR, id="exit-0-without-frame-is-not-ok"),
        pytest.param(
            end(exit_code=1), frame("exception", "ValueError", 1), Status.RUNTIME_ERROR, id="exception"
        ),
        pytest.param(end(exit_code=0), frame("exit", "SystemExit", 0), Status.OK, id="sys-exit-0"),
        pytest.param(end(exit_code=3), frame("exit", "SystemExit", 3), Status.RUNTIME_ERROR, id="sys-exit-3"),
        pytest.param(
            end(exit_code=1), frame("exception", "MemoryError", 1), Status.MEMORY_LIMIT, id="memory-error"
        ),
        pytest.param(
            end(exit_code=1),
            frame("exception", "MemoryError", 1, builtin=False),
            Status.RUNTIME_ERROR,
            id="user-class-named-memoryerror",
        ),
        pytest.param(end(None, signal.SIGKILL, "wall"), None, Status.TIMEOUT, id="wall-kill"),
        pytest.param(end(None, signal.SIGKILL, "output"), None, Status.OUTPUT_LIMIT, id="output-kill"),
        pytest.param(end(None, signal.SIGSYS), None, Status.SANDBOX_VIOLATION, id="seccomp-kill"),
        pytest.param(end(None, signal.SIGXCPU, cpu=2.0), None, Status.TIMEOUT, id="rlimit-cpu-soft"),
        pytest.param(end(None, signal.SIGKILL, cpu=3.0), None, Status.TIMEOUT, id="rlimit-cpu-hard"),
        pytest.param(end(None, signal.SIGKILL, cpu=0.2), None, Status.MEMORY_LIMIT, id="cgroup-oom-kill"),
        pytest.param(end(None, signal.SIGSEGV), None, Status.RUNTIME_ERROR, id="segfault"),
        pytest.param(end(None, signal.SIGSEGV), frame(), Status.RUNTIME_ERROR, id="frame-then-crash"),
        pytest.param(end(None, signal.SIGKILL, "wall"), frame(), Status.TIMEOUT, id="frame-then-wall-kill"),
    ],
)
def test_classify(termination: Termination, result_frame: ResultFrame | None, expected: Status) -> None:
    """Each way a child can end maps to exactly one status."""
    assert classify(termination, result_frame) is expected
