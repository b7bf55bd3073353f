"""The asynchronous twin of :class:`~trainer_client.client.SandboxClient`: same methods, awaited.

Chunks of one call are sent concurrently, at most ``max_concurrency`` at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
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


class AsyncSandboxClient(BaseClient):
    """An asyncio client of the sandboxd HTTP API.

    ``transport`` replaces the network, e.g. ``httpx.ASGITransport(app=create_app(...))`` in tests.
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
        transport: httpx.AsyncBaseTransport | None = None,
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
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=self.timeout, headers=self.headers, transport=transport
        )

    async def run(
        self,
        code: str,
        *,
        stdin: str | None = None,
        limits: LimitsLike | None = None,
        policy: str | None = None,
    ) -> RunResult:
        """Run one program in a fresh sandboxed process."""
        [result] = await self._send_all(self._run_calls(code, stdin, limits, policy))
        return result

    async def run_batch(self, runs: Iterable[RunLike], *, policy: str | None = None) -> list[RunResult]:
        """Run many programs (code strings, :class:`RunSpec` or dicts); results keep their order."""
        return await self._send_all(self._batch_calls(runs, policy))

    async def validate(
        self,
        tasks: Iterable[TaskLike],
        *,
        truncate_outputs: bool = False,
        allow_non_canonical: bool = True,
        policy: str | None = None,
    ) -> list[ValidateResult]:
        """Validate proposed AZR tasks; results keep their order."""
        return await self._send_all(
            self._validate_calls(tasks, truncate_outputs, allow_non_canonical, policy)
        )

    async def check(self, answers: Iterable[AnswerLike], *, policy: str | None = None) -> list[CheckResult]:
        """Check solver answers; results keep their order."""
        return await self._send_all(self._check_calls(answers, policy))

    async def health(self) -> Health:
        """Liveness: the process serves HTTP (no retries)."""
        [result] = await self._send(health_call())
        return result

    async def ready(self) -> Readiness:
        """Readiness: isolation works and pools are warm (no retries; not ready is a result)."""
        [result] = await self._send(ready_call())
        return result

    async def tripwires(self, count: int = 1) -> list[TripwireTask]:
        """``count`` tripwire tasks to mix into a solver batch (see :mod:`trainer_client.tripwires`)."""
        return await self._send(tripwires_call(count))

    async def _send_all(self, calls: list[Call[T]]) -> list[T]:
        if len(calls) == 1:
            return await self._send(calls[0])
        bound = asyncio.Semaphore(self.max_concurrency)

        async def bounded(call: Call[T]) -> list[T]:
            async with bound:
                return await self._send(call)

        tasks = [asyncio.ensure_future(bounded(call)) for call in calls]
        try:
            chunks = await asyncio.gather(*tasks)
        except BaseException:
            # The first failure is raised as itself (not as an ExceptionGroup); the other chunks stop.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return [item for chunk in chunks for item in chunk]

    async def _send(self, call: Call[T]) -> list[T]:
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            outcome: list[T] | Refusal
            try:
                response = await self._http.request(call.method, call.path, json=call.body)
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
            await _retry.async_sleep(wait)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncSandboxClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
