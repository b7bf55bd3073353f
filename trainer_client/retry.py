"""When to retry and how long to wait: pure decisions shared by the sync and async clients."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and full jitter.

    Only refusals that say "try again later" are retried (``retry_statuses``, connection failures);
    a read timeout is not, since the server may still be running the work.
    """

    max_attempts: int = 6  # including the first
    backoff_base_seconds: float = 0.5  # the n-th retry waits up to base * 2**(n-1) ...
    backoff_max_seconds: float = 30.0  # ... but never more than this, unless Retry-After asks for more
    deadline_seconds: float = 300.0  # total budget from the first attempt; no retry would end past it
    jitter: bool = True  # full jitter: a uniform wait in [0, backoff]
    retry_statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 503, 504}))

    def delay(
        self, attempt: int, retry_after: float | None, elapsed: float, rng: random.Random | None = None
    ) -> float | None:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), or None to give up.

        The wait is at least the server's ``Retry-After``; giving up happens when attempts are spent or
        when waiting would pass the deadline.
        """
        if attempt >= self.max_attempts:
            return None
        backoff = min(self.backoff_max_seconds, self.backoff_base_seconds * 2.0 ** (attempt - 1))
        if self.jitter:
            backoff = rng.uniform(0.0, backoff) if rng is not None else random.uniform(0.0, backoff)  # noqa: S311 - jitter
        wait = max(backoff, retry_after or 0.0)
        if elapsed + wait > self.deadline_seconds:
            return None
        return wait


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds, or an HTTP date; None if absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def sleep(seconds: float) -> None:
    """The sync client's wait (a module attribute, so tests can replace it)."""
    time.sleep(seconds)


async def async_sleep(seconds: float) -> None:
    """The async client's wait (a module attribute, so tests can replace it)."""
    await asyncio.sleep(seconds)
