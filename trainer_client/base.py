"""What the sync and async clients have in common: settings, and turning method arguments into calls."""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Mapping

import httpx

from . import calls
from .calls import AnswerLike, Call, LimitsLike, RunLike, TaskLike
from .models import CheckResult, RunResult, ValidateResult
from .retry import RetryPolicy

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
URL_VARIABLE = "SANDBOXD_URL"  # where sandboxd is when no base_url is given
DEFAULT_CHUNK_SIZE = 256  # runs per /v1/runs/batch request (a policy's default batch.max_runs)
# Tasks or answers per /v1/azr request (a policy's azr.max_tasks defaults to 1,024). One request of 512
# answers instead of two concurrent ones of 256: an AZR step took paired 0.931, 1.003 and 0.972 of the
# time in three runs (docs/benchmarks.md); the daemon plans, judges and ledgers the batch once.
DEFAULT_AZR_CHUNK_SIZE = 512
# Chunks of one call in flight at once. The server leases sandboxes per request, so a step's chunks run
# side by side, and one chunk's trusted-side work (planning, judging, the ledger) overlaps the others' runs.
DEFAULT_MAX_CONCURRENCY = 4
# A chunk of 256 programs can take minutes when many hit their wall time; connecting should not.
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=600.0, write=60.0, pool=60.0)
USER_AGENT = "sandboxd-trainer-client/0.1"


def resolve_base_url(base_url: str | None) -> str:
    """``base_url``, else ``$SANDBOXD_URL``, else the loopback default."""
    return base_url or os.environ.get(URL_VARIABLE) or DEFAULT_BASE_URL


class BaseClient:
    """Settings and request building; subclasses only send.

    ``base_url`` defaults to ``$SANDBOXD_URL``, then http://127.0.0.1:8080. ``policy`` is the default
    sandbox policy for every call (a method's ``policy=`` overrides it); None means the server's
    default. Lists longer than ``chunk_size`` are sent as several requests, at most ``max_concurrency``
    at a time, and the results are put back together in order; without ``chunk_size``, a batch's runs go
    256 to a request and AZR tasks or answers 512. ``token`` (default ``$SANDBOXD_TOKEN``) is sent as a
    bearer token.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        policy: str | None = None,
        chunk_size: int | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        token: str | None = None,
    ) -> None:
        if chunk_size is not None and chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.base_url = resolve_base_url(base_url)
        self.policy = policy
        self.chunk_size = chunk_size or DEFAULT_CHUNK_SIZE
        self.azr_chunk_size = chunk_size or DEFAULT_AZR_CHUNK_SIZE
        self.max_concurrency = max_concurrency
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.retry = retry or RetryPolicy()
        self.headers = {"User-Agent": USER_AGENT, **(headers or {})}
        token = token if token is not None else os.environ.get("SANDBOXD_TOKEN")
        if token:
            self.headers.setdefault("Authorization", f"Bearer {token}")
        self._rng = random.Random()  # noqa: S311 - jitter only

    def _policy(self, policy: str | None) -> str | None:
        return self.policy if policy is None else policy

    def _run_calls(
        self, code: str, stdin: str | None, limits: LimitsLike | None, policy: str | None
    ) -> list[Call[RunResult]]:
        return [calls.run_call(code, stdin, limits, self._policy(policy))]

    def _batch_calls(self, runs: Iterable[RunLike], policy: str | None) -> list[Call[RunResult]]:
        return calls.batch_calls(runs, self._policy(policy), self.chunk_size)

    def _validate_calls(
        self, tasks: Iterable[TaskLike], truncate_outputs: bool, allow_non_canonical: bool, policy: str | None
    ) -> list[Call[ValidateResult]]:
        return calls.validate_calls(
            tasks, truncate_outputs, allow_non_canonical, self._policy(policy), self.azr_chunk_size
        )

    def _check_calls(self, answers: Iterable[AnswerLike], policy: str | None) -> list[Call[CheckResult]]:
        return calls.check_calls(answers, self._policy(policy), self.azr_chunk_size)
