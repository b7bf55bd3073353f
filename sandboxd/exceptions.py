"""Faults, as opposed to outcomes. A timeout or an OOM kill is a *verdict*, never an exception.

Exception tree::

    SandboxdError
    ├── ConfigurationError        a policy or setting is invalid (startup fails)
    ├── RequestRejected           the request breaks a policy cap (HTTP 422)
    │   └── UnknownPolicy
    ├── Unavailable               isolation cannot be provided right now (HTTP 503; fail closed)
    │   ├── BackendUnavailable    the container engine is down or refuses
    │   ├── ImageMissing          the runner image is not built
    │   ├── PoolExhausted         no warm sandbox within the admission deadline
    │   ├── Throttled             the throttle refuses trainer work (paused, halted, stale, over rate)
    │   └── LedgerUnavailable     the ledger cannot record durably, so nothing is acknowledged
    └── SandboxFault              a sandbox broke mid-run for a reason the program did not cause

The API maps these to HTTP statuses in one table (``sandboxd.api.errors``).
"""

from __future__ import annotations


class SandboxdError(Exception):
    """Base class of every error raised by sandboxd itself."""


class ConfigurationError(SandboxdError):
    """A policy file or a setting is invalid."""


class RequestRejected(SandboxdError):
    """The request is well-formed but breaks a cap of its policy."""


class UnknownPolicy(RequestRejected):
    """The request names a policy that is not loaded."""


class Unavailable(SandboxdError):
    """Isolation cannot be provided right now; the service refuses to run code."""

    retry_after_seconds: float = 5.0


class BackendUnavailable(Unavailable):
    """The container engine is unreachable or failed an operation."""


class ImageMissing(Unavailable):
    """The runner image is not present in the engine."""


class PoolExhausted(Unavailable):
    """No warm sandbox became free before the admission deadline."""

    retry_after_seconds = 1.0


class SandboxFault(SandboxdError):
    """A sandbox died or spoke garbage for a reason outside the program's control."""


class Throttled(Unavailable):
    """The alignment-confidence throttle refuses the request (docs/safety.md)."""

    def __init__(self, message: str, retry_after_seconds: float) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class LedgerUnavailable(Unavailable):
    """The ledger cannot append durably right now; the request fails closed (docs/ledger.md)."""

    retry_after_seconds = 2.0
