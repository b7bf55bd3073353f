"""Wire models of the SandboxFusion-compatible ``POST /run_code`` (docs/sandboxfusion.md).

Field names, defaults and enum values follow SandboxFusion's ``RunCodeRequest`` and
``RunCodeResponse``, so existing clients (verl's ``sandbox_fusion`` reward path) work unchanged.
Unlike sandboxd's own schemas, unknown request fields are *ignored*, as SandboxFusion does.
Fields that SandboxFusion does not have are prefixed ``sandboxd_`` and always optional.
"""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# The languages SandboxFusion knows. Any other name is a validation error (422) there and here;
# a known language that sandboxd cannot run is a 200 ``SandboxError``, as a missing runtime is there.
FusionLanguage = Literal[
    "python", "python3", "cpp", "nodejs", "go", "go_test", "java", "php", "csharp", "bash",
    "typescript", "sql", "rust", "cuda", "lua", "R", "perl", "D_ut", "ruby", "scala", "julia",
    "pytest", "junit", "kotlin_script", "jest", "verilog", "python_gpu", "lean", "swift", "racket",
]  # fmt: skip
PYTHON_LANGUAGES = frozenset({"python", "python3"})


class RunCodeRequest(BaseModel):
    """One program to run, as SandboxFusion clients send it."""

    model_config = ConfigDict(extra="ignore")

    code: str = Field(description="The program's source")
    language: FusionLanguage = Field(description="Only python (or python3) runs in sandboxd")
    compile_timeout: float = Field(10, description="Ignored: python has no compile step")
    run_timeout: float = Field(
        10, gt=0, allow_inf_nan=False, description="Seconds of wall and CPU time; clamped to the policy caps"
    )
    memory_limit_MB: int = Field(-1, description="Address-space limit; <= 0 means the policy default")
    stdin: str | None = Field(None, description="Text fed to the program's stdin")
    files: dict[str, str | None] = Field(
        default_factory=dict, description="Not supported: any file content is a SandboxError"
    )
    fetch_files: list[str] = Field(
        default_factory=list, description="Not supported: always answered with an empty files dict"
    )
    args: list[str] = Field(default_factory=list, description="Ignored (SandboxFusion uses it for pytest)")


class RunStatus(enum.StrEnum):
    """Outcome of the whole request."""

    SUCCESS = "Success"  # the program finished with return code 0
    FAILED = "Failed"  # the program failed, timed out or hit a limit
    SANDBOX_ERROR = "SandboxError"  # the sandbox could not run it; says nothing about the program


class CommandRunStatus(enum.StrEnum):
    """How one command ended."""

    FINISHED = "Finished"  # exited or was killed for a limit; see return_code
    ERROR = "Error"  # the sandbox failed around it (only with SandboxError)
    TIME_LIMIT_EXCEEDED = "TimeLimitExceeded"  # wall or CPU time ran out; return_code is null


class CommandRunResult(BaseModel):
    status: CommandRunStatus
    execution_time: float | None = None
    return_code: int | None = Field(None, description="Exit code, or minus the signal number if killed")
    stdout: str | None = None
    stderr: str | None = None


class RunCodeResponse(BaseModel):
    """SandboxFusion's response; every field is always present in the JSON, nulls included."""

    status: RunStatus
    message: str = ""
    compile_result: CommandRunResult | None = None
    run_result: CommandRunResult | None = None
    executor_pod_name: str | None = Field(None, description="The sandbox container that ran the program")
    files: dict[str, str] = Field(default_factory=dict)
    sandboxd_status: str | None = Field(
        None, description="sandboxd's own verdict (ok, runtime_error, timeout, memory_limit, ...)"
    )
