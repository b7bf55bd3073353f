"""Request and response models, named by role (``RunCreate`` in, ``RunPublic`` out)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sandboxd.limits import LimitsRequest
from sandboxd.verdict import Status
from sandboxd.watchdog.wiring import WatchdogReport


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunSpecIn(_Strict):
    """One program to run."""

    code: str = Field(description="Python source, run as __main__ in a fresh process")
    stdin: str = Field("", description="Text fed to the program's stdin")
    limits: LimitsRequest = Field(
        default_factory=LimitsRequest, description="Lower or raise (up to the caps)"
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Opaque; echoed to the ledger")


class RunCreate(RunSpecIn):
    policy: str | None = Field(None, description="Sandbox policy name; the server default if omitted")


class BatchCreate(_Strict):
    policy: str | None = None
    runs: list[RunSpecIn] = Field(min_length=1)


class RunPublic(BaseModel):
    id: str
    status: Status
    exit_code: int | None
    signal: int | None
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    wall_time_seconds: float
    cpu_time_seconds: float
    peak_memory_bytes: int = Field(description="Peak resident set size of the child (ru_maxrss)")
    sandbox_id: str = Field(description="The container that ran it (shared only under reuse policies)")
    policy: str
    detail: str | None = None
    watchdog: WatchdogReport | None = Field(None, description="The static watchdog's decision; null when off")


class BatchPublic(BaseModel):
    results: list[RunPublic]


class Problem(BaseModel):
    """Error body for every 4xx/5xx."""

    error: str
    detail: Any = None
