"""A unix socket per sandbox for the fork-server protocol, instead of the engine's attach stream.

Through ``docker attach`` every message travels daemon → dockerd → containerd-shim → fifo →
fork-server and back, which costs dockerd and the shim about 0.4 ms of CPU per run. A unix socket
is a direct kernel path between the two processes.

- The daemon makes a fresh directory per sandbox (mode 0711, unguessable name), listens on
  ``fs.sock`` in it, and bind-mounts the directory read-only at :data:`MOUNT` in the container.
- The fork-server gets the socket's path and a one-time token through its environment, connects,
  and sends the token and a newline before anything else.
- The daemon accepts the first connection that presents the token, then closes and removes the
  listener, so no one can connect afterwards. Children cannot call ``socket`` or ``connect`` at
  all (their seccomp allowlist kills them), and the container has no network.

gVisor cannot connect to a host socket through a bind mount, so runsc sandboxes keep attach
(``transport`` in docs/configuration.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import secrets
import shutil
import socket
import tempfile
from pathlib import Path

MOUNT = "/run/sandboxd"
SOCKET_NAME = "fs.sock"
ENV_PATH = "SANDBOXD_CHANNEL"  # read by sandboxd.runner.forkserver
ENV_TOKEN = "SANDBOXD_CHANNEL_TOKEN"  # noqa: S105 - the name of a variable, not a secret
_STREAM_LIMIT = 2**20


class ChannelError(OSError):
    """The fork-server never connected with its token."""


class SocketChannel:
    """One sandbox's listening socket, its directory and its token."""

    def __init__(self, root: Path) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="ch-", dir=root))
        self.token = secrets.token_hex(16)
        self._listener: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.directory.chmod(0o711)  # the sandbox's uid may traverse it, not list it
            path = self.directory / SOCKET_NAME
            self._listener.bind(str(path))
            path.chmod(0o666)  # connect(2) needs write permission on the socket
            self._listener.listen(4)
            self._listener.setblocking(False)
        except OSError:
            self.close()
            raise

    @property
    def env(self) -> dict[str, str]:
        return {ENV_PATH: f"{MOUNT}/{SOCKET_NAME}", ENV_TOKEN: self.token}

    async def accept(self, timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The fork-server's connection, once it has shown the token; then the listener is gone."""
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        expected = self.token.encode("ascii") + b"\n"
        try:
            async with asyncio.timeout(timeout):
                while True:
                    conn, _ = await loop.sock_accept(self._listener)
                    reader, writer = await asyncio.open_connection(sock=conn, limit=_STREAM_LIMIT)
                    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                        if hmac.compare_digest(await reader.readexactly(len(expected)), expected):
                            return reader, writer
                    writer.close()
        except TimeoutError as exc:
            raise ChannelError(
                f"the fork-server did not connect to {self.directory / SOCKET_NAME} within {timeout:.0f}s "
                "(if the daemon runs in a container, set SANDBOXD_TRANSPORT=attach)"
            ) from exc
        finally:
            self._close_listener()

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            with contextlib.suppress(OSError):
                os.unlink(self.directory / SOCKET_NAME)

    def close(self) -> None:
        """Close the listener and remove the directory. Idempotent."""
        self._close_listener()
        shutil.rmtree(self.directory, ignore_errors=True)


def channel_root(configured: Path | None, instance: str) -> Path:
    """The directory that holds every sandbox's channel directory (made 0711 if missing).

    By default it is private to this process. Those left by dead daemons of the same instance
    (killed before they could clean up) are removed first.
    """
    if configured is None:
        prefix = f"sandboxd-channels-{instance}-"
        for stale in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
            pid = stale.name.removeprefix(prefix)
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)
    root = configured or Path(tempfile.gettempdir()) / f"sandboxd-channels-{instance}-{os.getpid()}"
    root.mkdir(mode=0o711, parents=True, exist_ok=True)
    root.chmod(0o711)
    return root


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
