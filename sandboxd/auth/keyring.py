"""Pure decisions about a presented token: who is it, may it do this, may it do it now."""

from __future__ import annotations

import hmac
import math
from dataclasses import dataclass, field

from .tokens import TokenEntry, hash_token


@dataclass
class TokenBucket:
    """A token bucket of ``rate`` requests per second with a burst of ``max(1, rate)``."""

    rate: float
    tokens: float = field(init=False)
    stamp: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    @property
    def burst(self) -> float:
        return max(1.0, self.rate)

    def take(self, now: float) -> float:
        """Spend one request at time ``now``; return 0 if allowed, else the seconds until one is."""
        if self.stamp is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def retry_after_header(seconds: float) -> str:
    """A Retry-After value: whole seconds, at least one."""
    return str(max(1, math.ceil(seconds)))


class Keyring:
    """The loaded tokens, looked up by hash in constant time, with a bucket per rate-limited token."""

    def __init__(self, entries: list[TokenEntry]) -> None:
        self.entries = entries
        self.buckets = {e.id: TokenBucket(e.rate_per_second) for e in entries if e.rate_per_second}

    def authenticate(self, token: str) -> TokenEntry | None:
        """The entry whose hash matches ``token``; every entry is compared, so timing leaks nothing."""
        digest = hash_token(token)
        found = None
        for entry in self.entries:
            if hmac.compare_digest(entry.sha256, digest):
                found = entry
        return found

    def throttle(self, entry: TokenEntry, now: float) -> float:
        """Seconds the caller must wait (0: go ahead)."""
        bucket = self.buckets.get(entry.id)
        return 0.0 if bucket is None else bucket.take(now)
