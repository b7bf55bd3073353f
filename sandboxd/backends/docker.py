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
import shutil
import socket
import struct
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions
from docker.transport import unixconn
from docker.types import LogConfig, Mount

from sandboxd.exceptions import BackendUnavailable, ImageMissing, SandboxdError
from sandboxd.settings import Settings

from .base import SandboxExit, SandboxSpec
from .channel import MOUNT, ChannelError, SocketChannel, channel_root

log = logging.getLogger(__name__)
T = TypeVar("T")
_MUX_HEADER = struct.Struct(">BxxxL")
_STDOUT, _STDERR = 1, 2
_DIAGNOSTIC_BYTES = 4096
_DEFAULT_SOCKET = "unix:///var/run/docker.sock"
START_LABEL = "sandboxd.start"  # unique per container start (see DockerBackend.create)
_CHANNEL_READ_BYTES = 1 << 20
_CHANNEL_ACCEPT_SECONDS = 300.0  # an upper bound; the pool's start timeout gives up far sooner


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


def _connect_or_close(connection: Any) -> None:
    """docker-py's unix connect, except that a refused connect closes its socket instead of leaking it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(connection.timeout)
        sock.connect(connection.unix_socket)
    except BaseException:
        sock.close()
        raise
    connection.sock = sock


def _fix_unix_connect() -> None:
    """Install :func:`_connect_or_close` (idempotent): a stopped engine fails every call this way."""
    connection_class: Any = unixconn.UnixHTTPConnection
    if connection_class.connect is not _connect_or_close:
        connection_class.connect = _connect_or_close


def _close_socket(socket_io: Any) -> None:
    with contextlib.suppress(Exception):
        socket_io._sock.close()
    with contextlib.suppress(Exception):
        socket_io.close()


def scratch_tmpfs(spec: SandboxSpec) -> str:
    """The mount options of a sandbox's ``/scratch``: size- and inode-capped, noexec, the sandbox user's own."""
    uid, _, gid = spec.user.partition(":")
    return (
        f"rw,nosuid,nodev,noexec,size={spec.scratch_bytes},nr_inodes={spec.scratch_inodes},"
        f"uid={uid},gid={gid},mode=0700"
    )


class DockerSandbox:
    """A started container, its attach stream split into protocol bytes and diagnostics.

    With a :class:`~.channel.SocketChannel` the protocol runs over the channel's socket instead,
    and the attach stream only carries diagnostics, which a background task logs.
    """

    def __init__(
        self,
        backend: DockerBackend,
        container: Any,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        channel: SocketChannel | None = None,
    ) -> None:
        self._backend = backend
        self._container = container
        self._reader = reader
        self._writer = writer
        self._destroyed = False
        self.id = str(container.id)[:12]
        self._channel = channel
        self._accepted: asyncio.Task[tuple[asyncio.StreamReader, asyncio.StreamWriter]] | None = None
        self._diagnostics: asyncio.Task[None] | None = None
        if channel is not None:
            self._accepted = asyncio.create_task(channel.accept(_CHANNEL_ACCEPT_SECONDS))
            self._diagnostics = asyncio.create_task(self._log_attach(), name=f"attach-{self.id}")

    async def _streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The protocol's streams: the channel's once the fork-server connected, else attach's."""
        if self._accepted is None:
            return self._reader, self._writer
        return await asyncio.shield(self._accepted)

    async def _log_attach(self) -> None:
        """Socket mode: attach carries only diagnostics. At its end the fork-server is gone."""
        await self._receive_attach(self._reader)
        if self._accepted is not None and not self._accepted.done():
            self._accepted.cancel()  # it exited before connecting: fail now, not at the timeout

    async def receive(self) -> bytes:
        if self._accepted is None:
            return await self._receive_attach(self._reader)
        try:
            reader, _ = await self._streams()
            return await reader.read(_CHANNEL_READ_BYTES)
        except (ConnectionError, OSError, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and not self._accepted.cancelled():
                raise  # our caller was cancelled, not the accept
            if isinstance(exc, ChannelError):
                log.warning("sandbox %s: %s", self.id, exc)
            return b""

    async def _receive_attach(self, reader: asyncio.StreamReader) -> bytes:
        """The next stdout payload of the attach stream, logging stderr on the way; b"" at its end."""
        while True:
            try:
                header = await reader.readexactly(_MUX_HEADER.size)
                stream, length = _MUX_HEADER.unpack(header)
                payload = await reader.readexactly(length)
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                return b""
            if stream == _STDOUT and self._channel is None:
                return payload
            if stream == _STDERR:
                log.warning(
                    "sandbox %s says: %s", self.id, payload[:_DIAGNOSTIC_BYTES].decode("utf-8", "replace")
                )

    async def send(self, data: bytes) -> None:
        try:
            _, writer = await self._streams()
            writer.write(data)
            await writer.drain()
        except (ConnectionError, OSError) as exc:
            raise BackendUnavailable(f"sandbox {self.id}: stdin closed: {exc}") from exc

    async def exit_info(self) -> SandboxExit:
        def inspect() -> SandboxExit:
            self._backend.engine()  # fails fast (and leak-free) while the engine is down
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
        if self._channel is not None:
            for task in (self._accepted, self._diagnostics):
                if task is not None:
                    task.cancel()
            if self._accepted is not None and self._accepted.done() and not self._accepted.cancelled():
                with contextlib.suppress(Exception):
                    self._accepted.result()[1].close()
            self._channel.close()

        def remove() -> None:
            self._backend.engine()  # fails fast (and leak-free) while the engine is down
            with contextlib.suppress(docker.errors.NotFound), engine_errors("remove sandbox"):
                self._container.remove(force=True)

        try:
            await self._backend.call(remove)
        except SandboxdError as exc:
            log.warning("could not remove sandbox %s (retried when the engine answers): %s", self.id, exc)
            self._backend.unremoved.add(str(self._container.id))


class DockerBackend:
    name = "docker"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._threads = ThreadPoolExecutor(settings.docker_threads, thread_name_prefix="docker")
        self._client: Any = None
        self._channel_root: Path | None = None
        self.unremoved: set[str] = set()  # containers whose removal failed (engine down): retried by check
        self.failed_starts: set[str] = set()  # start labels of failed starts: their leftovers go at check
        _fix_unix_connect()

    def _remember_failure(self, label: str, function: Callable[[], T]) -> Callable[[], T]:
        """``function``, noting ``label`` in ``failed_starts`` if it raises."""

        def guarded() -> T:
            try:
                return function()
            except BaseException:
                self.failed_starts.add(label)
                raise

        return guarded

    async def call(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, function)

    def engine(self) -> Any:
        """The SDK client, after checking that a unix engine socket accepts connections."""
        # Probed before every call, not just the first: the SDK leaks its socket when connect() fails,
        # and a stopped engine (refused connections) would otherwise leak one per call.
        _probe_unix_socket(self._settings.docker_url or os.environ.get("DOCKER_HOST") or _DEFAULT_SOCKET)
        if self._client is None:
            timeout = max(1, round(self._settings.engine_call_timeout_seconds))  # bounds every engine call
            with engine_errors("connect"):
                if self._settings.docker_url:
                    self._client = docker.DockerClient(base_url=self._settings.docker_url, timeout=timeout)
                else:
                    self._client = docker.from_env(timeout=timeout)
            if self._client.api.base_url.startswith("http+docker://"):  # a unix socket: no proxy applies
                # requests would otherwise scan os.environ for proxies on every engine call: wasted CPU,
                # and a KeyError when another thread edits the environment at that moment.
                self._client.api.trust_env = False
        return self._client

    async def check(self, images: set[str], runtimes: set[str]) -> None:
        def probe() -> None:
            engine = self.engine()
            with engine_errors("probe engine"):
                engine.ping()
                info = engine.info()
                for image in images:
                    engine.images.get(image)
                for container_id in list(self.unremoved):  # the engine answers again: finish removals
                    with contextlib.suppress(docker.errors.NotFound):
                        engine.api.remove_container(container_id, force=True)
                    self.unremoved.discard(container_id)
                for label in list(self.failed_starts):
                    for container in engine.containers.list(all=True, filters={"label": label}):
                        with contextlib.suppress(docker.errors.NotFound):
                            container.remove(force=True)
                    self.failed_starts.discard(label)
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
        scratch = scratch_tmpfs(spec)

        channel = self._channel(spec)
        env = dict(spec.env) | (channel.env if channel else {})
        mounts = [Mount(f.target, f.source, type="bind", read_only=True) for f in spec.files]
        if channel is not None:
            mounts.append(Mount(MOUNT, str(channel.directory), type="bind", read_only=True))

        # A per-start label: if the engine fails mid-start (the container may exist although its id never
        # reached us), whatever carries it is removed at the next successful probe.
        labels = {**spec.labels, START_LABEL: uuid.uuid4().hex}

        def start() -> tuple[Any, Any]:
            engine = self.engine()
            with engine_errors("start sandbox"):
                container = engine.containers.create(
                    spec.image,
                    detach=True,
                    stdin_open=True,
                    network_mode="none",
                    # Still a private netns with only lo, but no libnetwork sandbox: the engine skips its
                    # prestart hook (a re-exec of dockerd), which cost ~90 ms and the most CPU of a start.
                    network_disabled=True,
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
                    labels=labels,
                    environment=env,
                    mounts=mounts,
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

        started = asyncio.get_running_loop().run_in_executor(
            self._threads, self._remember_failure(f"{START_LABEL}={labels[START_LABEL]}", start)
        )
        try:
            container, socket_io = await asyncio.shield(started)
        except asyncio.CancelledError:
            started.add_done_callback(self._discard_started)
            if channel is not None:
                channel.close()
            raise
        except BaseException:
            if channel is not None:
                channel.close()
            raise
        raw = socket_io._sock  # the SDK wraps the upgraded connection in a SocketIO
        # Release the SocketIO's hold on the socket (makefile() counts it): with it, the transport's
        # close() only marks the socket closed, and the fd stays open until a cyclic GC ("unclosed socket").
        socket_io.close()
        raw.setblocking(False)
        try:
            reader, writer = await asyncio.open_connection(sock=raw, limit=2**20)
        except OSError as exc:
            _close_socket(socket_io)
            if channel is not None:
                channel.close()
            await self.call(lambda: container.remove(force=True))
            raise BackendUnavailable(f"attach to sandbox failed: {exc}") from exc
        return DockerSandbox(self, container, reader, writer, channel)

    def _channel(self, spec: SandboxSpec) -> SocketChannel | None:
        """A socket channel for this sandbox, or None to speak over attach (docs/design.md)."""
        transport = self._settings.transport
        if transport == "attach" or (transport == "auto" and spec.runtime != "runc"):
            return None
        if self._channel_root is None:
            self._channel_root = channel_root(self._settings.channel_dir, self._settings.instance)
        try:
            return SocketChannel(self._channel_root)
        except OSError as exc:
            raise BackendUnavailable(f"cannot make a channel socket in {self._channel_root}: {exc}") from exc

    def _discard_started(self, future: asyncio.Future[tuple[Any, Any]]) -> None:
        """A start finished after its caller gave up: close the socket and remove the container."""
        if future.cancelled() or future.exception() is not None:
            return
        container, socket_io = future.result()
        _close_socket(socket_io)
        self.unremoved.add(str(container.id))  # until the removal below is known to have worked

        def remove() -> None:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
            self.unremoved.discard(str(container.id))

        with contextlib.suppress(RuntimeError):  # the thread pool may already be shut down
            self._threads.submit(remove)

    async def remove_labelled(self, labels: Mapping[str, str]) -> int:
        def sweep() -> int:
            engine = self.engine()
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
        if self._channel_root is not None and self._settings.channel_dir is None:
            shutil.rmtree(self._channel_root, ignore_errors=True)
        self._threads.shutdown(wait=False, cancel_futures=True)
