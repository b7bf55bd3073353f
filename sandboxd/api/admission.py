"""ASGI middleware: bounded admission of work, so that a flood neither grows memory nor starves health.

Three answers come before any route runs, all ``503`` with ``Retry-After``:

- ``overloaded``: ``max_inflight_requests`` work requests are already in flight, or admitting this
  body would hold more than ``max_inflight_body_bytes`` of request bodies at once (a lone request is
  always admitted, so the cap never makes a valid request impossible);
- ``shutting_down``: SIGTERM was received (:mod:`sandboxd.api.drain`); runs already admitted finish.

Health, readiness and metrics are exempt, so probes answer throughout. The body of a refused request
is read and dropped (never kept), so clients that send before they read still get the 503.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .bodylimit import run_refusing

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
RETRY_AFTER_SECONDS = 1


class _OverBudget(Exception):
    """A streamed body without Content-Length outgrew the budget."""


@dataclass
class Admission:
    """What is in flight now; shared by the middleware and the drain on SIGTERM."""

    max_requests: int
    max_body_bytes: int
    inflight: int = 0
    body_bytes: int = 0
    draining: bool = False
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def refusal(self, declared: int) -> tuple[str, str] | None:
        """Why a request declaring ``declared`` body bytes is refused now, or None (pure)."""
        if self.draining:
            return "shutting_down", "sandboxd is shutting down; retry on another instance"
        if self.inflight >= self.max_requests:
            return (
                "overloaded",
                f"{self.inflight} requests in flight (max_inflight_requests={self.max_requests})",
            )
        if self.inflight and self.body_bytes + declared > self.max_body_bytes:
            return "overloaded", (
                f"{self.body_bytes} request bytes held; {declared} more would pass "
                f"max_inflight_body_bytes={self.max_body_bytes}"
            )
        return None

    def enter(self, declared: int) -> None:
        self.inflight += 1
        self.body_bytes += declared
        self._idle.clear()

    def leave(self, held: int) -> None:
        self.inflight -= 1
        self.body_bytes -= held
        if self.inflight == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is in flight; False if ``timeout`` passed first."""
        if self.inflight == 0:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", []):
        if name == b"content-length" and value.isdigit():
            return int(value)
    return 0


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp, admission: Admission) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        admission = self.admission
        declared = _declared_length(scope)
        refused = admission.refusal(declared)
        if refused is not None:
            await _drain_body(receive)
            await _refuse(send, *refused)
            return
        held = declared
        admission.enter(declared)

        async def counted_receive() -> Message:
            nonlocal held
            message = await receive()
            if message["type"] == "http.request" and not declared:
                size = len(message.get("body", b""))
                held += size
                admission.body_bytes += size
                if admission.inflight > 1 and admission.body_bytes > admission.max_body_bytes:
                    raise _OverBudget
            return message

        async def over_budget() -> None:
            await _drain_body(receive)
            await _refuse(send, "overloaded", "request bodies in flight passed max_inflight_body_bytes")

        try:
            await run_refusing(self.app, scope, counted_receive, send, stop=_OverBudget, refuse=over_budget)
        finally:
            admission.leave(held)


async def _drain_body(receive: Receive) -> None:
    """Read the rest of the request body and drop it (bounded by the body-size middleware outside)."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


async def _refuse(send: Send, error: str, detail: str) -> None:
    body = json.dumps({"error": error, "detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
