"""Helpers for testing sandboxd and code built on it: a real server on loopback, in a thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import uvicorn

from sandboxd.api.app import create_app
from sandboxd.settings import Settings


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def running_server(
    settings: Settings, *, ready_timeout: float = 120.0, wait_ready: bool = True
) -> Iterator[str]:
    """Serve ``create_app(settings)`` with uvicorn on 127.0.0.1 and yield its base URL.

    Waits until ``/readyz`` answers 200 (every pool warm) unless ``wait_ready`` is False.
    The server, its pools and its containers are shut down on exit.
    """
    port = settings.port if settings.port != 8080 else free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
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
