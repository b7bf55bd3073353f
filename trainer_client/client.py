"""The synchronous client; safe to share between threads.

Chunks of one call are sent concurrently from a few threads, at most ``max_concurrency`` at a time, as the
async twin sends them; ``max_concurrency=1`` sends them one after another.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TypeVar

import httpx

from . import retry as _retry
from .base import DEFAULT_MAX_CONCURRENCY, DEFAULT_TIMEOUT, BaseClient
from .calls import (
    AnswerLike,
    Call,
    LimitsLike,
    Refusal,
    RunLike,
    TaskLike,
    gave_up,
    health_call,
    read_response,
    ready_call,
    transport_refusal,
)
from .models import CheckResult, Health, Readiness, RunResult, ValidateResult
from .retry import RetryPolicy
from .tripwires import TripwireTask, tripwires_call

T = TypeVar("T")


class SandboxClient(BaseClient):
    """A client of the sandboxd HTTP API.

    >>> with SandboxClient("http://127.0.0.1:8080") as sandbox:  # doctest: +SKIP
    ...     sandbox.run("print(1 + 1)").stdout
    '2\\n'

    ``transport`` replaces the network, e.g. ``httpx.MockTransport(handler)`` in tests.
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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url,
            policy=policy,
            chunk_size=chunk_size,
            max_concurrency=max_concurrency,
            timeout=timeout,
            retry=retry,
            headers=headers,
            token=token,
        )
        self._http = httpx.Client(
            base_url=self.base_url, timeout=self.timeout, headers=self.headers, transport=transport
        )

    def run(
        self,
        code: str,
        *,
        stdin: str | None = None,
        limits: LimitsLike | None = None,
        policy: str | None = None,
    ) -> RunResult:
        """Run one program in a fresh sandboxed process."""
        [result] = self._send_all(self._run_calls(code, stdin, limits, policy))
        return result

    def run_batch(self, runs: Iterable[RunLike], *, policy: str | None = None) -> list[RunResult]:
        """Run many programs (code strings, :class:`RunSpec` or dicts); results keep their order."""
        return self._send_all(self._batch_calls(runs, policy))

    def validate(
        self,
        tasks: Iterable[TaskLike],
        *,
        truncate_outputs: bool = False,
        allow_non_canonical: bool = True,
        policy: str | None = None,
    ) -> list[ValidateResult]:
        """Validate proposed AZR tasks; results keep their order."""
        return self._send_all(self._validate_calls(tasks, truncate_outputs, allow_non_canonical, policy))

    def check(self, answers: Iterable[AnswerLike], *, policy: str | None = None) -> list[CheckResult]:
        """Check solver answers; results keep their order."""
        return self._send_all(self._check_calls(answers, policy))

    def health(self) -> Health:
        """Liveness: the process serves HTTP (no retries)."""
        [result] = self._send(health_call())
        return result

    def ready(self) -> Readiness:
        """Readiness: isolation works and pools are warm (no retries; not ready is a result)."""
        [result] = self._send(ready_call())
        return result

    def tripwires(self, count: int = 1) -> list[TripwireTask]:
        """``count`` tripwire tasks to mix into a solver batch (see :mod:`trainer_client.tripwires`)."""
        return self._send(tripwires_call(count))

    def _send_all(self, calls: list[Call[T]]) -> list[T]:
        if len(calls) == 1 or self.max_concurrency == 1:
            return [item for call in calls for item in self._send(call)]
        workers = min(self.max_concurrency, len(calls))
        with ThreadPoolExecutor(workers, thread_name_prefix="sandboxd-chunk") as pool:
            sent = [pool.submit(self._send, call) for call in calls]
            try:
                return [item for future in sent for item in future.result()]
            except BaseException:
                # The first chunk (in order) that failed is raised as itself; chunks not yet sent never
                # are, and those in flight end before this returns (their results are dropped).
                for future in sent:
                    future.cancel()
                raise

    def _send(self, call: Call[T]) -> list[T]:
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            outcome: list[T] | Refusal
            try:
                response = self._http.request(call.method, call.path, json=call.body)
            except httpx.TransportError as exc:
                outcome = transport_refusal(exc)
            else:
                outcome = read_response(response, call, self.retry)
            if not isinstance(outcome, Refusal):
                return outcome
            elapsed = time.monotonic() - started
            wait = self.retry.delay(attempt, outcome.retry_after, elapsed, self._rng) if call.retry else None
            if wait is None:
                raise gave_up(outcome, attempt) from outcome.cause
            _retry.sleep(wait)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SandboxClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
