"""A sandbox as the core sees it: one fork-server behind a backend handle, plus its lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
from collections.abc import Callable
from typing import Any

from .backends.base import SandboxExit, SandboxHandle
from .exceptions import SandboxFault
from .runner.protocol import (
    RESULT_SECTIONS,
    Message,
    MessageReader,
    ProtocolError,
    encode_message,
    split_sections,
)

log = logging.getLogger(__name__)


class SandboxState(enum.StrEnum):
    STARTING = "starting"  # container started, fork-server not yet configured
    WARM = "warm"  # configured and idle in the pool
    LEASED = "leased"  # serving one request
    RETIRING = "retiring"  # used up; being destroyed in the background
    DEAD = "dead"  # gone: exited, crashed or destroyed


class SandboxDied(SandboxFault):
    """The fork-server's stream ended while runs were in flight."""

    def __init__(self, sandbox_id: str, exit_info: SandboxExit | None) -> None:
        self.exit_info = exit_info
        oom = " (memory cgroup OOM kill)" if exit_info and exit_info.oom_killed else ""
        super().__init__(f"sandbox {sandbox_id} died{oom}")


class ZygoteDied(SandboxFault):
    """A zygote (a second fork-server inside the container) died under a run; PID 1 lives on.

    No program can kill a zygote (``kill`` is not in the child allowlist), so this is an outside
    kill or the container's OOM killer: the run is retried, and the zygote is respawned on next use.
    """


_ZYGOTE_DEATH = "zygote died"  # the message the fork-server sends for each run a dead zygote held


class Sandbox:
    """Speaks the fork-server protocol over a handle and routes responses to waiting runs."""

    def __init__(self, handle: SandboxHandle, policy_name: str) -> None:
        self.handle = handle
        self.policy_name = policy_name
        self.state = SandboxState.STARTING
        self.requests_served = 0
        self.runs_served = 0
        self.runs_at_lease = 0  # runs_served when the pool last leased it (its runs per request: pool.py)
        self.spares = 0  # warm spares its fork-server forked at configure (pool.py)
        self._reader = MessageReader()
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._control: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._ids = itertools.count()
        self._pump: asyncio.Task[None] | None = None
        self._death: SandboxDied | None = None
        self.exit_info: SandboxExit | None = None
        self.on_death: Callable[[Sandbox], None] | None = None  # set by the owning pool

    @property
    def id(self) -> str:
        return self.handle.id

    @property
    def alive(self) -> bool:
        return self._death is None and self.state is not SandboxState.DEAD

    async def configure(self, configure: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Wait for ``hello``, send ``configure``, wait for ``configured``."""
        self._pump = asyncio.create_task(self._read_loop(), name=f"sandbox-{self.id}")
        async with asyncio.timeout(timeout):
            hello = await self._next_control()
            if hello.get("op") != "hello":
                raise SandboxFault(f"sandbox {self.id}: expected hello, got {hello.get('op')!r}")
            await self.handle.send(encode_message({"op": "configure", **configure}))
            reply = await self._next_control()
        if reply.get("op") != "configured":
            raise SandboxFault(f"sandbox {self.id}: configure failed: {reply.get('message', reply)}")
        return reply

    async def _next_control(self) -> dict[str, Any]:
        message = await self._control.get()
        if message.get("op") == "__eof__":
            raise self._death or SandboxFault(f"sandbox {self.id} closed")
        return message

    async def run(self, message: dict[str, Any], body: bytes, timeout: float) -> dict[str, Any]:
        """Send one ``run`` and wait for its ``result``: the header, plus its body's sections as bytes."""
        if self._death is not None:
            raise self._death
        run_id = f"{message['id']}.{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[run_id] = future
        self.runs_served += 1
        try:
            await self.handle.send(encode_message({**message, "id": run_id}, body))
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError as exc:
            raise SandboxFault(f"sandbox {self.id}: no result within {timeout:.1f}s") from exc
        finally:
            self._pending.pop(run_id, None)

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self.handle.receive()
                if not data:
                    break
                for message in self._reader.feed(data):
                    self._route(message)
        except ProtocolError as exc:
            log.error("sandbox %s broke protocol: %s", self.id, exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sandbox %s reader failed", self.id)
        if self.state is not SandboxState.DEAD:  # died by itself; after our destroy() there is nothing to ask
            self.exit_info = await self.handle.exit_info()
        self._death = SandboxDied(self.id, self.exit_info)
        self.state = SandboxState.DEAD
        for future in self._pending.values():
            if not future.done():
                future.set_exception(self._death)
        self._control.put_nowait({"op": "__eof__"})
        if self.on_death is not None:
            self.on_death(self)

    def _route(self, received: Message) -> None:
        message = received.header
        op = message.get("op")
        future = self._pending.get(str(message.get("id")))
        if op in ("result", "error") and future is not None:
            if future.done():
                return
            if op == "result":
                future.set_result({**message, **split_sections(received, RESULT_SECTIONS)})
            else:
                text = str(message.get("message"))
                fault = ZygoteDied if text.endswith(_ZYGOTE_DEATH) else SandboxFault
                future.set_exception(fault(f"sandbox {self.id}: {text}"))
        elif op != "result":
            self._control.put_nowait(message)

    async def destroy(self) -> None:
        self.state = SandboxState.DEAD
        await self.handle.destroy()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
