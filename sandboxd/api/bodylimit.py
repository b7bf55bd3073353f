"""ASGI middleware: refuse request bodies over a byte cap with 413, before parsing them."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    pass


async def run_refusing(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    stop: type[Exception],
    refuse: Callable[[], Awaitable[None]],
) -> None:
    """Run ``app``; if ``receive`` raises ``stop`` before the response has started, ``refuse()`` answers.

    Once the app has started its response, the refusal can no longer be sent, and the request just ends.
    """
    started = False

    async def tracking_send(message: Message) -> None:
        nonlocal started
        if message["type"] == "http.response.start":
            started = True
        await send(message)

    try:
        await app(scope, receive, tracking_send)
    except stop:
        if not started:
            await refuse()


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._reject(send)
                return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        await run_refusing(
            self.app, scope, limited_receive, send, stop=BodyTooLarge, refuse=lambda: self._reject(send)
        )

    async def _reject(self, send: Send) -> None:
        body = json.dumps(
            {"error": "body_too_large", "detail": f"request body exceeds {self.max_bytes} bytes"}
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})
