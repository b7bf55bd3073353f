"""A thin client for sandboxd, for trainers: sync and async twins, AZR's executor, reward functions.

It imports only httpx, pydantic and the standard library, so it installs anywhere a trainer runs.
"""

from .async_client import AsyncSandboxClient
from .client import SandboxClient
from .exceptions import (
    SandboxError,
    SandboxRequestError,
    SandboxServerError,
    SandboxTimeout,
    SandboxUnavailable,
)
from .models import (
    Answer,
    CheckResult,
    Health,
    Limits,
    ProposedTask,
    Readiness,
    Reason,
    RunResult,
    RunSpec,
    Status,
    Usage,
    ValidateResult,
    ValueReward,
)
from .retry import RetryPolicy
from .tripwires import TripwireTask, mix_tripwires

__all__ = [
    "Answer",
    "AsyncSandboxClient",
    "CheckResult",
    "Health",
    "Limits",
    "ProposedTask",
    "Readiness",
    "Reason",
    "RetryPolicy",
    "RunResult",
    "RunSpec",
    "SandboxClient",
    "SandboxError",
    "SandboxRequestError",
    "SandboxServerError",
    "SandboxTimeout",
    "SandboxUnavailable",
    "Status",
    "TripwireTask",
    "Usage",
    "ValidateResult",
    "ValueReward",
    "mix_tripwires",
]
