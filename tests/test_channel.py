"""The per-sandbox unix socket channel (sandboxd/backends/channel.py), with real sockets."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from pathlib import Path

import pytest

from sandboxd.backends.channel import ENV_PATH, ENV_TOKEN, MOUNT, ChannelError, SocketChannel, channel_root


def host_path(channel: SocketChannel) -> str:
    return str(channel.directory / "fs.sock")


async def connect(path: str, first: bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, path)
        await asyncio.get_running_loop().sock_sendall(sock, first)
    except OSError:
        sock.close()
        raise
    return sock


def test_env_names_the_mounted_socket_and_a_fresh_token(tmp_path: Path) -> None:
    """The fork-server is told the in-container path and a per-sandbox random token."""
    one, two = SocketChannel(tmp_path), SocketChannel(tmp_path)
    try:
        assert one.env[ENV_PATH] == f"{MOUNT}/fs.sock"
        assert len(one.env[ENV_TOKEN]) == 32
        assert one.env[ENV_TOKEN] != two.env[ENV_TOKEN]
        assert stat.S_IMODE(one.directory.stat().st_mode) == 0o711
    finally:
        one.close()
        two.close()


def test_accepts_the_token_then_nobody_else() -> None:
    """A connection with the token is accepted; after that the listener is gone from the disk."""

    async def body(root: Path) -> None:
        channel = SocketChannel(root)
        path = host_path(channel)
        try:
            accepting = asyncio.create_task(channel.accept(5))
            client = await connect(path, channel.token.encode() + b"\nhello")
            reader, writer = await accepting
            assert await reader.readexactly(5) == b"hello"
            assert not os.path.exists(path)
            with pytest.raises(FileNotFoundError):
                await connect(path, b"late\n")
            writer.close()
            client.close()
        finally:
            channel.close()
        assert not channel.directory.exists()

    with_tmp(body)


def test_wrong_token_is_dropped_and_the_right_one_still_gets_in() -> None:
    """An impostor without the token is disconnected; the fork-server can still connect."""

    async def body(root: Path) -> None:
        channel = SocketChannel(root)
        try:
            accepting = asyncio.create_task(channel.accept(5))
            impostor = await connect(host_path(channel), b"0" * 32 + b"\n")
            await asyncio.sleep(0.05)
            assert not accepting.done()
            assert await asyncio.get_running_loop().sock_recv(impostor, 10) == b""  # closed on it
            honest = await connect(host_path(channel), channel.token.encode() + b"\n")
            _, writer = await accepting
            writer.close()
            impostor.close()
            honest.close()
        finally:
            channel.close()

    with_tmp(body)


def test_no_connection_is_a_clear_error() -> None:
    """A fork-server that never connects fails the start with a message that says what to do."""

    async def body(root: Path) -> None:
        channel = SocketChannel(root)
        try:
            with pytest.raises(ChannelError, match="SANDBOXD_TRANSPORT=attach"):
                await channel.accept(0.2)
        finally:
            channel.close()

    with_tmp(body)


def test_root_sweeps_directories_of_dead_daemons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Channel roots left by a killed daemon of the same instance are removed; live ones stay."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile  # noqa: PLC0415 - re-read TMPDIR for this test only

    monkeypatch.setattr(tempfile, "tempdir", None)
    dead = tmp_path / "sandboxd-channels-unit-999999999"
    alive = tmp_path / f"sandboxd-channels-unit-{os.getppid()}"
    other = tmp_path / "sandboxd-channels-other-999999999"
    for folder in (dead, alive, other):
        (folder / "ch-x").mkdir(parents=True)
    root = channel_root(None, "unit")
    assert root == tmp_path / f"sandboxd-channels-unit-{os.getpid()}"
    assert not dead.exists()
    assert alive.exists()
    assert other.exists()


def with_tmp(body: object) -> None:
    import tempfile  # noqa: PLC0415 - a short path: unix socket paths are limited to 108 bytes

    with tempfile.TemporaryDirectory(prefix="ch") as folder:
        asyncio.run(body(Path(folder)))  # type: ignore[operator]
