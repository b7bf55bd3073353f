"""Per-run limits: the quotas the kernel and the fork-server enforce on one child."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MiB = 1024 * 1024


class Limits(BaseModel):
    """Limits of one run. Requests may lower them freely and raise them up to the policy's caps."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    wall_time_seconds: float = Field(10.0, gt=0, le=3600)  # SIGKILL from the fork-server
    cpu_time_seconds: float = Field(10.0, gt=0, le=3600)  # RLIMIT_CPU, rounded up to whole seconds
    memory_bytes: int = Field(512 * MiB, ge=16 * MiB)  # RLIMIT_AS on top of the forked image
    output_bytes: int = Field(1 * MiB, ge=0)  # per stream (stdout, stderr); more kills the run
    file_size_bytes: int = Field(0, ge=0)  # RLIMIT_FSIZE; children cannot open files for writing anyway
    open_files: int = Field(64, ge=8, le=4096)  # RLIMIT_NOFILE

    def within(self, seconds: float) -> Limits:
        """These limits with wall and CPU time capped at ``seconds`` (a check's own time budget)."""
        return self.model_copy(
            update={
                "wall_time_seconds": min(self.wall_time_seconds, seconds),
                "cpu_time_seconds": min(self.cpu_time_seconds, seconds),
            }
        )

    def exceeding(self, caps: Limits) -> list[str]:
        """Names of the fields where these limits are above ``caps``, as ``field > cap``."""
        return [
            f"{name}={getattr(self, name)} > {getattr(caps, name)}"
            for name in type(self).model_fields
            if getattr(self, name) > getattr(caps, name)
        ]


class LimitsRequest(BaseModel):
    """Limits as a request states them: every field optional, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    wall_time_seconds: float | None = Field(None, gt=0, le=3600)
    cpu_time_seconds: float | None = Field(None, gt=0, le=3600)
    memory_bytes: int | None = Field(None, ge=16 * MiB)
    output_bytes: int | None = Field(None, ge=0)
    file_size_bytes: int | None = Field(None, ge=0)
    open_files: int | None = Field(None, ge=8, le=4096)

    def over(self, defaults: Limits) -> Limits:
        return defaults.model_copy(update=self.model_dump(exclude_none=True))
