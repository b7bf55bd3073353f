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
    text_cache_bytes: int = Field(64 * 1024 * 1024, ge=0)  # texts' checks and bytecode kept across requests
    # daemon <-> fork-server: "auto" (default) = a unix socket per sandbox under runc and docker attach
    # under runsc; "socket" = always the socket; "attach" = always docker attach (needed when the daemon
    # runs in a container whose paths are not the host's). docs/configuration.md has the trade-off.
    transport: Literal["auto", "socket", "attach"] = "auto"
    channel_dir: Path | None = None  # holds the channel sockets; None: a private temp dir (docs/design.md)
    warm_pools: bool = True  # start pools at startup (tests may turn this off)
    allow_public_bind: bool = False
    tokens_file: Path | None = None  # None: authentication disabled (docs/auth.md); production must set it
    metrics_require_token: bool = False  # /metrics needs a token (any role) when authentication is on
    # Runtime safety (docs/safety.md): None = <policies_dir>/safety/config.yaml if present, else all off
    safety_file: Path | None = None
    tripwire_webhook_url: str | None = Field(None, pattern=r"^https?://")  # POSTed every tripwire event
    # Fault tolerance (docs/operations-faults.md)
    engine_probe_timeout_seconds: float = Field(5.0, gt=0, le=300)  # a probe slower than this: engine down
    engine_call_timeout_seconds: float = Field(60.0, gt=0, le=600)  # socket timeout of every engine call
    engine_check_interval_seconds: float = Field(5.0, gt=0, le=300)  # engine probe period (1 s while down)
    max_inflight_requests: int = Field(256, ge=1)  # more concurrent work requests: 503 + Retry-After
    max_inflight_body_bytes: int = Field(256 * 1024 * 1024, ge=1024)  # request bytes held at once
    shutdown_grace_seconds: float = Field(30.0, ge=0, le=3600)  # SIGTERM: drain in-flight runs this long
    workers: int = Field(1, ge=1, le=64)  # uvicorn worker processes; >1 merges metrics (docs/operations.md)
    # The curriculum ledger (docs/ledger.md)
    data_dir: Path = Path("var")  # local state: the default ledger database and its signing key
    ledger_url: str | None = None  # sqlite:///path or postgresql://...; None: sqlite under data_dir
    ledger_origin: str = Field(
        "sandboxd/ledger", pattern=r"^[^\s+]{1,200}$"
    )  # log name, signed in checkpoints
    ledger_key_file: Path | None = None  # Ed25519 PEM key (made 0600 if missing); None: data_dir/ledger.key
    ledger_checkpoint_entries: int = Field(1000, ge=1)  # sign a checkpoint after this many new entries
    ledger_checkpoint_seconds: float = Field(60.0, gt=0)  # ... or after this long with new entries
    ledger_checkpoint_file: Path | None = None  # sink: append each checkpoint here as a JSON line
    ledger_checkpoint_webhook: str | None = Field(None, pattern=r"^https?://")  # sink: POST each checkpoint
    # Alignment scorecards (docs/scorecards.md)
    scorecard_interval_seconds: float | None = Field(None, ge=60)  # None: no periodic scorecards
    scorecard_dir: Path | None = None  # scorecard-<time>.json/.html files; None: data_dir/scorecards
    scorecard_window: str = "last:50%"  # the current window (window specs: docs/scorecards.md)
    scorecard_baseline_window: str = "before"  # compared against this one
    scorecard_keep: int = Field(100, ge=1)  # older scorecards are deleted

    @model_validator(mode="after")
    def _safe(self) -> Settings:
        if self.host not in LOOPBACK and not self.allow_public_bind:
            raise ValueError(
                f"refusing to bind {self.host}: sandboxd has no TLS of its own; put it behind a reverse "
                "proxy, or set SANDBOXD_ALLOW_PUBLIC_BIND=1 if you know what you are doing"
            )
        if self.ledger_url is not None:
            from sandboxd.ledger.stores import parse_url  # noqa: PLC0415 - keeps settings cheap to import

            parse_url(self.ledger_url)  # a LedgerUrlError (ValueError) names the problem
        from sandboxd.scorecard.windows import validate  # noqa: PLC0415 - keeps settings cheap to import

        validate(self.scorecard_window)  # a WindowError (ValueError) names the problem
        validate(self.scorecard_baseline_window, baseline=True)
        return self
