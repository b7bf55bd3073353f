"""The request-building and response-reading code that the sync and async clients share.

A client method turns its arguments into a list of :class:`Call` (one per chunk), sends each with
retries, and concatenates what each call's ``parse`` returns. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

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
    RunResult,
    RunSpec,
    ValidateResult,
)
from .retry import RetryPolicy, parse_retry_after

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

RunLike = RunSpec | str | Mapping[str, Any]
TaskLike = ProposedTask | Mapping[str, Any]
AnswerLike = Answer | Mapping[str, Any]
LimitsLike = Limits | Mapping[str, Any]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One HTTP request, and how to read a successful answer into results."""

    method: str
    path: str
    body: dict[str, Any] | None
    parse: Callable[[bytes], list[T]]  # the raw body: pydantic reads the JSON and validates in one pass
    ok_statuses: frozenset[int] = frozenset({200})  # statuses whose body is a result
    retry: bool = True


@dataclass(frozen=True)
class Refusal:
    """A failed attempt that the retry policy may retry."""

    reason: str
    status_code: int | None = None
    retry_after: float | None = None
    cause: BaseException | None = None


def chunked(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """Consecutive slices of at most ``size`` items, in order."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    return [items[start : start + size] for start in range(0, len(items), size)]


def _model(kind: type[M], value: M | Mapping[str, Any]) -> M:
    return value if isinstance(value, kind) else kind.model_validate(value)


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True)


class _Results(BaseModel, Generic[M]):
    """The ``{"results": [...]}`` body of a batch answer (other fields are ignored)."""

    results: list[M]


def _results(kind: type[M], count: int) -> Callable[[bytes], list[M]]:
    envelope = _Results[kind]  # type: ignore[valid-type]  # pydantic's parametrised generic, cached

    def parse(content: bytes) -> list[M]:
        # One pass in pydantic-core, instead of json.loads and then model_validate per item: for an
        # AZR step's two answers, 11 ms of client CPU instead of 17 (docs/benchmarks.md).
        results: list[M] = envelope.model_validate_json(content).results
        if len(results) != count:
            raise ValueError(f"asked for {count} results, got {len(results)}")
        return results

    return parse


def _with_policy(body: dict[str, Any], policy: str | None) -> dict[str, Any]:
    return body if policy is None else {**body, "policy": policy}


def run_call(code: str, stdin: str | None, limits: LimitsLike | None, policy: str | None) -> Call[RunResult]:
    spec = RunSpec(code=code, stdin=stdin or "", limits=_model(Limits, limits or {}))
    return Call(
        "POST",
        "/v1/runs",
        _with_policy(_dump(spec), policy),
        lambda data: [RunResult.model_validate_json(data)],
    )


def batch_calls(runs: Iterable[RunLike], policy: str | None, chunk_size: int) -> list[Call[RunResult]]:
    specs = [RunSpec(code=run) if isinstance(run, str) else _model(RunSpec, run) for run in runs]
    return [
        Call(
            "POST",
            "/v1/runs/batch",
            _with_policy({"runs": [_dump(spec) for spec in chunk]}, policy),
            _results(RunResult, len(chunk)),
        )
        for chunk in chunked(specs, chunk_size)
    ]


def validate_calls(
    tasks: Iterable[TaskLike],
    truncate_outputs: bool,
    allow_non_canonical: bool,
    policy: str | None,
    chunk_size: int,
) -> list[Call[ValidateResult]]:
    models = [_model(ProposedTask, task) for task in tasks]
    options = {"truncate_outputs": truncate_outputs, "allow_non_canonical": allow_non_canonical}
    return [
        Call(
            "POST",
            "/v1/azr/validate",
            _with_policy({"tasks": [_dump(task) for task in chunk], **options}, policy),
            _results(ValidateResult, len(chunk)),
        )
        for chunk in chunked(models, chunk_size)
    ]


def check_calls(
    answers: Iterable[AnswerLike], policy: str | None, chunk_size: int
) -> list[Call[CheckResult]]:
    models = [_model(Answer, answer) for answer in answers]
    return [
        Call(
            "POST",
            "/v1/azr/check",
            _with_policy({"answers": [_dump(answer) for answer in chunk]}, policy),
            _results(CheckResult, len(chunk)),
        )
        for chunk in chunked(models, chunk_size)
    ]


def health_call() -> Call[Health]:
    return Call("GET", "/healthz", None, lambda data: [Health.model_validate_json(data)], retry=False)


def ready_call() -> Call[Readiness]:
    """``/readyz`` answers 503 with a body when not ready: that is a result, not a refusal."""
    return Call(
        "GET",
        "/readyz",
        None,
        lambda data: [Readiness.model_validate_json(data)],
        ok_statuses=frozenset({200, 503}),
        retry=False,
    )


def _problem(response: httpx.Response) -> tuple[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return "http_error", response.text[:2000]
    if isinstance(body, dict) and "error" in body:
        return str(body["error"]), body.get("detail")
    return "http_error", body


def read_response(response: httpx.Response, call: Call[T], retry: RetryPolicy) -> list[T] | Refusal:
    """The call's results, a retryable refusal, or raise the error the response stands for."""
    status = response.status_code
    if status in call.ok_statuses:
        try:
            return call.parse(response.content)
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            raise SandboxServerError(status, "unreadable_response", str(exc)[:2000]) from exc
    if status in retry.retry_statuses:
        error, detail = _problem(response)
        return Refusal(
            f"HTTP {status} {error}: {detail}",
            status_code=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    error, detail = _problem(response)
    if 400 <= status < 500:
        raise SandboxRequestError(status, error, detail)
    raise SandboxServerError(status, error, detail)


def transport_refusal(exc: httpx.TransportError) -> Refusal:
    """A connection that never got going is retryable; anything that failed mid-request is raised."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return Refusal(f"cannot connect: {exc!r}", cause=exc)
    if isinstance(exc, httpx.TimeoutException):
        raise SandboxTimeout(f"{type(exc).__name__}: {exc}") from exc
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
        raise SandboxUnavailable(f"connection lost mid-request (not retried): {exc!r}", attempts=1) from exc
    raise SandboxError(f"{type(exc).__name__}: {exc}") from exc


def gave_up(refusal: Refusal, attempts: int) -> SandboxUnavailable:
    return SandboxUnavailable(
        f"gave up after {attempts} attempt(s): {refusal.reason}",
        attempts=attempts,
        status_code=refusal.status_code,
    )
