"""Process settings, read from ``SANDBOXD_*`` environment variables (docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BUILTIN_POLICIES = Path(__file__).resolve().parent.parent / "policies"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class Settings(BaseSettings):
    """Everything about the process that is not policy."""

    model_config = SettingsConfigDict(env_prefix="SANDBOXD_", frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    policies_dir: Path = BUILTIN_POLICIES
    default_policy: str = "default"
    instance: str = Field(
        "default", pattern=r"^[a-zA-Z0-9_.-]{1,64}$"
    )  # container label; orphans are per instance
    backend: Literal["docker"] = "docker"
    docker_url: str | None = None  # None: DOCKER_HOST or the local socket
    image: str | None = None  # None: the content-addressed runner image of this checkout
    hash_seed: int = Field(0, ge=0, le=4294967295)  # PYTHONHASHSEED inside every sandbox
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    docker_threads: int = Field(8, ge=1, le=64)  # threads for blocking engine calls
    warm_pools: bool = True  # start pools at startup (tests may turn this off)
    allow_public_bind: bool = False
    tokens_file: Path | None = None  # None: authentication disabled (docs/auth.md); production must set it
    metrics_require_token: bool = False  # /metrics needs a token (any role) when authentication is on

    @model_validator(mode="after")
    def _safe(self) -> Settings:
        if self.host not in LOOPBACK and not self.allow_public_bind:
            raise ValueError(
                f"refusing to bind {self.host}: sandboxd has no TLS of its own; put it behind a reverse "
                "proxy, or set SANDBOXD_ALLOW_PUBLIC_BIND=1 if you know what you are doing"
            )
        return self
