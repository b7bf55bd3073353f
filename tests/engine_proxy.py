"""A cut-able connection to the real Docker engine, for fault tests that must not stop the shared one.

``EngineProxy`` listens on its own unix socket and forwards every connection, byte for byte, to the
engine's socket (API calls and hijacked attach streams alike). A test points a daemon at it with
``SANDBOXD_DOCKER_URL=unix://<path>`` and then:

- ``cut()``: the engine stops. Every open connection is closed and new ones are refused
  (the socket file stays, so ``connect`` fails with ECONNREFUSED, as with a stopped dockerd);
- ``hang()``: the engine wedges. Open connections are closed; new ones are accepted and never answered;
- ``restore()``: the engine is back. Held connections are closed and new ones are forwarded again.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path

ENGINE_SOCKET = "/var/run/docker.sock"
_CHUNK = 65536


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class EngineProxy:
    def __init__(self, path: Path, target: str = ENGINE_SOCKET) -> None:
        self.path = str(path)
        self.target = target
        self.mode = "forward"  # forward | cut | hang
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def start(self) -> EngineProxy:
        self._listen()
        return self

    def _listen(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(256)
        listener.settimeout(0.1)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            if self.mode == "hang":  # accepted, never answered
                with self._lock:
                    self._open.add(client)
                continue
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.target)
            except OSError:
                _close(client)
                _close(upstream)
                continue
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(_CHUNK):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                _close(sock)
                with self._lock:
                    self._open.discard(sock)

    def _close_all(self) -> None:
        with self._lock:
            victims = list(self._open)
            self._open.clear()
        for sock in victims:
            _close(sock)

    def cut(self) -> None:
        """Stop the engine: close everything; refuse new connections."""
        self.mode = "cut"
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()  # the socket file stays: connect() gets ECONNREFUSED
        self._close_all()

    def hang(self) -> None:
        """Wedge the engine: close everything; accept new connections but never answer them."""
        self.mode = "hang"
        self._close_all()
        if self._listener is None:
            self._listen()

    def restore(self) -> None:
        """Bring the engine back: drop held connections, forward new ones."""
        self.mode = "forward"
        self._close_all()
        if self._listener is None:
            self._listen()

    def close(self) -> None:
        self.cut()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
