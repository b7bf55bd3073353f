"""One table from sandboxd exceptions to HTTP statuses, and the handlers that apply it."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from sandboxd.exceptions import (
    ConfigurationError,
    RequestRejected,
    SandboxdError,
    SandboxFault,
    Throttled,
    Unavailable,
    UnknownPolicy,
)

log = logging.getLogger(__name__)

STATUS_BY_ERROR: tuple[tuple[type[SandboxdError], int, str], ...] = (
    (UnknownPolicy, 422, "unknown_policy"),
    (RequestRejected, 422, "limit_exceeded"),
    (Throttled, 503, "throttled"),
    (Unavailable, 503, "unavailable"),
    (SandboxFault, 500, "sandbox_fault"),
    (ConfigurationError, 500, "configuration_error"),
    (SandboxdError, 500, "internal_error"),
)


HTTP_ERROR_NAMES: dict[int, str] = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    429: "rate_limited",
}


def _problem(status: int, error: str, detail: object, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(SandboxdError)
    async def sandboxd_error(_: Request, exc: SandboxdError) -> JSONResponse:
        for kind, status, error in STATUS_BY_ERROR:
            if isinstance(exc, kind):
                headers = None
                if isinstance(exc, Unavailable):
                    headers = {"Retry-After": str(max(1, round(exc.retry_after_seconds)))}
                if status >= 500 and status != 503:
                    log.error("request failed: %s", exc)
                return _problem(status, error, str(exc), headers)
        raise exc  # pragma: no cover - the table ends with the base class

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg"), "type": err.get("type")}
            for err in exc.errors()[:20]
        ]
        return _problem(422, "invalid_request", errors)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        error = HTTP_ERROR_NAMES.get(exc.status_code, "http_error")
        return _problem(exc.status_code, error, exc.detail, dict(exc.headers or {}))
