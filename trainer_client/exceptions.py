"""Faults of talking to sandboxd. What a program did (timeout, wrong answer) is a result, never an exception.

Exception tree::

    SandboxError
    ├── SandboxUnavailable    not reachable, or kept answering 429/503/504, until retries or deadline ran out
    ├── SandboxTimeout        an HTTP timeout (read, write, pool) expired; the work may still be running
    ├── SandboxRequestError   4xx: the request is wrong or breaks a policy cap; carries error and detail
    └── SandboxServerError    any other 5xx, or a response the client cannot read
"""

from __future__ import annotations

from typing import Any


class SandboxError(Exception):
    """Base class of every error the client raises."""


class SandboxUnavailable(SandboxError):
    """The service could not be used within the retry budget (attempts and total deadline)."""

    def __init__(self, message: str, *, attempts: int, status_code: int | None = None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.status_code = status_code  # the last status seen, None after connection failures


class SandboxTimeout(SandboxError):
    """An HTTP timeout expired. Raise the read timeout for big batches (``timeout=httpx.Timeout(...)``)."""


class _StatusError(SandboxError):
    def __init__(self, status_code: int, error: str, detail: Any = None) -> None:
        super().__init__(f"HTTP {status_code} {error}: {detail}")
        self.status_code = status_code
        self.error = error  # the server's error code, e.g. "limit_exceeded", "invalid_request"
        self.detail = detail  # the server's explanation: a string, or a list of field errors


class SandboxRequestError(_StatusError):
    """A 4xx: fix the request (``error`` and ``detail`` say what the server objected to)."""


class SandboxServerError(_StatusError):
    """A 5xx that is not worth retrying (a sandboxd fault), or an unreadable response."""
