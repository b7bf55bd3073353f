"""The Docker backend: the only module that imports the Docker SDK.

Blocking SDK calls run in a dedicated thread pool. A container's stdin/stdout are attached
*before* it starts (so not a byte of the fork-server's greeting is lost) and the attach socket is
handed to asyncio. Docker multiplexes stdout and stderr on it with 8-byte frame headers; stdout
carries the fork-server protocol, stderr its diagnostics, which are logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions
from docker.types import LogConfig

from sandboxd.exceptions import BackendUnavailable, ImageMissing, SandboxdError
from sandboxd.settings import Settings

from .base import SandboxExit, SandboxSpec

log = logging.getLogger(__name__)
T = TypeVar("T")
_MUX_HEADER = struct.Struct(">BxxxL")
_STDOUT, _STDERR = 1, 2
_DIAGNOSTIC_BYTES = 4096
_DEFAULT_SOCKET = "unix:///var/run/docker.sock"


@contextlib.contextmanager
def engine_errors(action: str) -> Iterator[None]:
    """Translate every SDK error into a sandboxd error; nothing above this module sees docker.errors."""
    try:
        yield
    except docker.errors.ImageNotFound as exc:
        raise ImageMissing(
            f"{action}: runner image missing ({exc.explanation}); run `sandboxd image build`"
        ) from exc
    except docker.errors.APIError as exc:
        raise BackendUnavailable(f"{action}: docker engine refused: {exc.explanation or exc}") from exc
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise BackendUnavailable(f"{action}: docker engine unreachable: {exc}") from exc


def _probe_unix_socket(url: str) -> None:
    """Fail fast, and without the SDK leaking a socket, when a unix engine socket does not answer."""
    if not url.startswith("unix://"):
        return
    path = url.removeprefix("unix://")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(5)
            probe.connect(path)
    except OSError as exc:
        raise BackendUnavailable(
            f"connect: docker engine unreachable at {path}: {exc.strerror or exc}"
        ) from exc


def _close_socket(socket_io: Any) -> None:
    with contextlib.suppress(Exception):
        socket_io._sock.close()
    with contextlib.suppress(Exception):
        socket_io.close()


class DockerSandbox:
    """A started container, its attach stream split into protocol bytes and diagnostics."""

    def __init__(
        self,
        backend: DockerBackend,
        container: Any,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self._backend = backend
        self._container = container
        self._reader = reader
        self._writer = writer
        self._destroyed = False
        self.id = str(container.id)[:12]

    async def receive(self) -> bytes:
        while True:
            try:
                header = await self._reader.readexactly(_MUX_HEADER.size)
                stream, length = _MUX_HEADER.unpack(header)
                payload = await self._reader.readexactly(length)
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                return b""
            if stream == _STDOUT:
                return payload
            if stream == _STDERR:
                log.warning(
                    "sandbox %s says: %s", self.id, payload[:_DIAGNOSTIC_BYTES].decode("utf-8", "replace")
                )

    async def send(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise BackendUnavailable(f"sandbox {self.id}: stdin closed: {exc}") from exc

    async def exit_info(self) -> SandboxExit:
        def inspect() -> SandboxExit:
            with engine_errors("inspect sandbox"):
                self._container.reload()
            state = self._container.attrs.get("State", {})
            return SandboxExit(oom_killed=bool(state.get("OOMKilled")), exit_code=state.get("ExitCode"))

        try:
            return await self._backend.call(inspect)
        except SandboxdError:
            return SandboxExit(oom_killed=False, exit_code=None)

    async def destroy(self) -> None:
        if self._destroyed:
            return
        self._destroyed = True
        with contextlib.suppress(Exception):
            self._writer.close()

        def remove() -> None:
            with contextlib.suppress(docker.errors.NotFound), engine_errors("remove sandbox"):
                self._container.remove(force=True)

        try:
            await self._backend.call(remove)
        except SandboxdError as exc:
            log.warning("could not remove sandbox %s: %s", self.id, exc)


class DockerBackend:
    name = "docker"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._threads = ThreadPoolExecutor(settings.docker_threads, thread_name_prefix="docker")
        self._client: Any = None

    async def call(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, function)

    def _engine(self) -> Any:
        if self._client is None:
            _probe_unix_socket(self._settings.docker_url or os.environ.get("DOCKER_HOST") or _DEFAULT_SOCKET)
            with engine_errors("connect"):
                if self._settings.docker_url:
                    self._client = docker.DockerClient(base_url=self._settings.docker_url, timeout=60)
                else:
                    self._client = docker.from_env(timeout=60)
        return self._client

    async def check(self, images: set[str], runtimes: set[str]) -> None:
        def probe() -> None:
            engine = self._engine()
            with engine_errors("probe engine"):
                engine.ping()
                info = engine.info()
                for image in images:
                    engine.images.get(image)
            security = " ".join(info.get("SecurityOptions") or [])
            if "seccomp" not in security:
                raise BackendUnavailable("docker engine has no seccomp support; refusing to run code")
            missing = runtimes - set(info.get("Runtimes") or {})
            if missing:
                raise BackendUnavailable(
                    f"docker engine lacks runtime(s) {sorted(missing)}; see docs/runtimes.md"
                )

        await self.call(probe)

    async def create(self, spec: SandboxSpec) -> DockerSandbox:
        uid, _, gid = spec.user.partition(":")
        scratch = (
            f"rw,nosuid,nodev,noexec,size={spec.scratch_bytes},nr_inodes={spec.scratch_inodes},"
            f"uid={uid},gid={gid},mode=0700"
        )

        def start() -> tuple[Any, Any]:
            engine = self._engine()
            with engine_errors("start sandbox"):
                container = engine.containers.create(
                    spec.image,
                    detach=True,
                    stdin_open=True,
                    network_mode="none",
                    read_only=True,
                    ipc_mode="none",
                    tmpfs={"/scratch": scratch},
                    cap_drop=["ALL"],
                    security_opt=["no-new-privileges:true", f"seccomp={spec.seccomp_profile}"],
                    user=spec.user,
                    pids_limit=spec.pids_limit,
                    mem_limit=spec.memory_bytes,
                    memswap_limit=spec.memory_bytes,
                    nano_cpus=int(spec.cpus * 1e9),
                    log_config=LogConfig(type="none"),
                    runtime=spec.runtime,
                    labels=dict(spec.labels),
                    environment=dict(spec.env),
                    hostname="sandbox",
                    working_dir="/scratch",
                    stop_signal="SIGKILL",
                )
                socket_io = None
                try:
                    socket_io = container.attach_socket(
                        params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
                    )
                    container.start()
                except BaseException:
                    if socket_io is not None:
                        _close_socket(socket_io)
                    with contextlib.suppress(Exception):
                        container.remove(force=True)
                    raise
            return container, socket_io

        started = asyncio.get_running_loop().run_in_executor(self._threads, start)
        try:
            container, socket_io = await asyncio.shield(started)
        except asyncio.CancelledError:
            started.add_done_callback(self._discard_started)
            raise
        raw = socket_io._sock  # the SDK wraps the upgraded connection in a SocketIO
        raw.setblocking(False)
        try:
            reader, writer = await asyncio.open_connection(sock=raw, limit=2**20)
        except OSError as exc:
            _close_socket(socket_io)
            await self.call(lambda: container.remove(force=True))
            raise BackendUnavailable(f"attach to sandbox failed: {exc}") from exc
        return DockerSandbox(self, container, reader, writer)

    def _discard_started(self, future: asyncio.Future[tuple[Any, Any]]) -> None:
        """A start finished after its caller gave up: close the socket and remove the container."""
        if future.cancelled() or future.exception() is not None:
            return
        container, socket_io = future.result()
        _close_socket(socket_io)
        with contextlib.suppress(RuntimeError):  # the thread pool may already be shut down
            self._threads.submit(lambda: container.remove(force=True))

    async def remove_labelled(self, labels: Mapping[str, str]) -> int:
        def sweep() -> int:
            engine = self._engine()
            with engine_errors("remove orphans"):
                found = engine.containers.list(
                    all=True, filters={"label": [f"{k}={v}" for k, v in labels.items()]}
                )
                for container in found:
                    with contextlib.suppress(docker.errors.NotFound):
                        container.remove(force=True)
            return len(found)

        return await self.call(sweep)

    async def aclose(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
        self._threads.shutdown(wait=False, cancel_futures=True)
