"""Helpers for testing sandboxd and code built on it: a real server on loopback, in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
import marshal
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import uvicorn

from sandboxd.api.app import create_app
from sandboxd.backends.base import Backend, SandboxExit, SandboxSpec
from sandboxd.exceptions import BackendUnavailable
from sandboxd.runner.protocol import (
    HEADER,
    RESULT_SECTIONS,
    RUN_SECTIONS,
    Message,
    MessageReader,
    encode_message,
    split_sections,
)
from sandboxd.settings import Settings
from sandboxd.watchdog.plugintest import load_plugin as load_plugin  # noqa: PLC0414 - explicit re-export for plugin authors (mypy strict)
from sandboxd.watchdog.plugintest import plugin_pack as plugin_pack  # noqa: PLC0414 - explicit re-export
from sandboxd.watchdog.plugintest import run_check as run_check  # noqa: PLC0414 - explicit re-export


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def running_server(
    settings: Settings,
    *,
    ready_timeout: float = 120.0,
    wait_ready: bool = True,
    backend: Backend | None = None,
) -> Iterator[str]:
    """Serve ``create_app(settings, backend=backend)`` with uvicorn on 127.0.0.1 and yield its base URL.

    Waits until ``/readyz`` answers 200 (every pool warm) unless ``wait_ready`` is False.
    The server, its pools and its containers are shut down on exit.
    """
    port = settings.port if settings.port != 8080 else free_port()
    config = uvicorn.Config(
        create_app(settings, backend=backend), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="sandboxd-test-server", daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout
    try:
        with httpx.Client(base_url=base_url, timeout=5.0) as client:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    response = client.get("/readyz")
                    if response.status_code == 200 or (not wait_ready and response.status_code == 503):
                        break
                if time.monotonic() > deadline or not thread.is_alive():
                    raise RuntimeError(f"sandboxd did not become ready at {base_url}")
                time.sleep(0.1)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=60)


class ProtocolPipe:
    """The daemon's end of the fork-server protocol over a process's stdin and stdout.

    For driving a real fork-server without the daemon: run as a host process
    (tests/test_forkserver_bursts.py) or as PID 1 of ``docker run -i`` (bench/forkserver.py).
    """

    def __init__(self, command: list[str], env: Mapping[str, str] | None = None) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - the caller's own command: a runner or docker, never model text
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0
        )
        self._reader = MessageReader()
        self._pending: list[Message] = []

    def send(self, data: bytes) -> None:
        """Write one or more encoded messages."""
        assert self.process.stdin is not None
        self.process.stdin.write(data)

    def next(self) -> Message:
        """The next message from the fork-server; raises RuntimeError if it closed its output."""
        assert self.process.stdout is not None
        while not self._pending:
            chunk = os.read(self.process.stdout.fileno(), 1 << 20)
            if not chunk:
                raise RuntimeError("the fork-server closed its output")
            self._pending = self._reader.feed(chunk)
        return self._pending.pop(0)

    def close(self, timeout: float = 60.0) -> None:
        """Ask the fork-server to shut down, close its input and wait for it."""
        self.send(encode_message({"op": "shutdown"}))
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()
        self.process.wait(timeout=timeout)
        self.process.stdout.close()


class FakeHandle:
    """An in-memory stand-in for a sandbox that answers the fork-server protocol.

    It runs nothing and isolates nothing: it exists to unit-test pools, executors and plugins.
    Every run "succeeds" with an empty valid frame unless ``fail_runs`` is set.
    """

    def __init__(self, number: int, backend: FakeBackend) -> None:
        self.id = f"fake{number:08d}"
        self.backend = backend
        self.destroyed = False
        self._outbox: asyncio.Queue[tuple[str | None, bytes]] = asyncio.Queue()
        self._reader = MessageReader()
        self._outbox.put_nowait((None, encode_message({"op": "hello", "version": 1, "pid": 1})))

    async def receive(self) -> bytes:
        run_id, data = await self._outbox.get()
        if run_id is not None:
            self.backend.log.append(("result", run_id))
        return data

    async def send(self, data: bytes) -> None:
        if self.destroyed:
            raise BackendUnavailable("fake sandbox destroyed")
        for received in self._reader.feed(data):
            message = received.header
            if message["op"] == "run":  # decoded for tests' convenience, as the child would
                sections = split_sections(received, RUN_SECTIONS)
                message = {
                    **message,
                    "job": marshal.loads(sections["job"])[1],  # noqa: S302 - the daemon's own fork_request
                    "stdin": sections["stdin"].decode("utf-8", "surrogatepass"),
                }
            self.backend.received.append(message)
            if message["op"] == "configure":
                spares = message.get("spares", 0)  # as the fork-server answers: how many it forked
                configured = encode_message(
                    {"op": "configured", "pid": 1, "preload_failed": [], "warm_spares": spares}
                )
                self._outbox.put_nowait((None, configured))
            elif message["op"] == "run":
                self.backend.log.append(("run", str(message["id"])))
                reply = self._result(message)
                parts = [bytes(reply.pop(name, b"")) for name in RESULT_SECTIONS]
                sizes = {
                    f"{name}_bytes": len(part) for name, part in zip(RESULT_SECTIONS, parts, strict=True)
                }
                self._outbox.put_nowait((message["id"], encode_message({**reply, **sizes}, b"".join(parts))))

    def _result(self, message: dict[str, Any]) -> dict[str, Any]:
        """The fork-server's answer: a header whose ``stdout``/``stderr``/``frame`` are the body's bytes."""
        body = json.dumps(
            {
                "v": 1,
                "nonce": message["nonce"],
                "outcome": "ok",
                "exc_type": None,
                "exit_code": 0,
                "values": [],
            }
        ).encode()
        frame = HEADER.pack(len(body)) + body
        return {
            "op": "result",
            "id": message["id"],
            "exit_code": 0,
            "signal": None,
            "killed_by": None,
            "wall_time_seconds": 0.001,
            "cpu_time_seconds": 0.001,
            "peak_memory_kib": 1024,
            "stdout": b"",
            "stderr": b"",
            "frame": frame,
        }

    def crash(self) -> None:
        """Simulate the container dying: the stream ends."""
        self._outbox.put_nowait((None, b""))

    async def exit_info(self) -> SandboxExit:
        return SandboxExit(oom_killed=False, exit_code=137)

    async def destroy(self) -> None:
        if not self.destroyed:
            self.destroyed = True
            self.backend.destroyed += 1
            self._outbox.put_nowait((None, b""))


class FakeBackend:
    """A backend of :class:`FakeHandle` sandboxes; ``fail_starts`` makes ``create`` fail."""

    name = "fake"

    def __init__(self) -> None:
        self.created: list[FakeHandle] = []
        self.destroyed = 0
        self.received: list[dict[str, Any]] = []
        self.log: list[tuple[str, str]] = []  # ("run", id) when sent, ("result", id) when its answer is read
        self.fail_starts = False
        self.unavailable: str | None = None

    async def check(self, images: set[str], runtimes: set[str]) -> None:
        if self.unavailable:
            raise BackendUnavailable(self.unavailable)

    async def create(self, spec: SandboxSpec) -> FakeHandle:
        if self.fail_starts:
            raise BackendUnavailable("fake engine refuses to start sandboxes")
        handle = FakeHandle(len(self.created), self)
        self.created.append(handle)
        return handle

    async def remove_labelled(self, labels: Mapping[str, str]) -> int:
        return 0

    async def aclose(self) -> None:
        return None
