"""A real ``sandboxd serve`` subprocess for tests that signal, kill or measure the daemon itself."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from sandboxd.testing import free_port

SANDBOXD = Path(sys.executable).with_name("sandboxd")


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    url: str
    instance: str
    log: Path

    def rss_bytes(self, field: str = "VmRSS") -> int:
        """The daemon's resident set (``VmHWM`` for its peak so far), from /proc."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no {field} for pid {self.process.pid}")


def settle(condition: Callable[[], bool], seconds: float = 60) -> None:
    """Wait until ``condition()`` holds, polling every 0.2 s; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.2)


def containers(instance: str) -> list[str]:
    command = ["docker", "ps", "-aq", "--filter", f"label=sandboxd.instance={instance}"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()


def wait_ready(url: str, process: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=5) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"sandboxd exited with {process.returncode} before it was ready")
            with contextlib.suppress(httpx.TransportError):
                if client.get("/readyz").status_code == 200:
                    return
            time.sleep(0.2)
    raise AssertionError(f"sandboxd at {url} not ready within {seconds}s")


@contextlib.contextmanager
def daemon(
    instance: str, policies: Path, log: Path, env: Mapping[str, str] | None = None
) -> Iterator[Daemon]:
    """Start ``sandboxd serve`` on a free loopback port and wait until it is ready.

    On exit the process is stopped if it still runs; its containers are left for the test to check.
    """
    port = free_port()
    environment = {
        **os.environ,
        "SANDBOXD_HOST": "127.0.0.1",
        "SANDBOXD_PORT": str(port),
        "SANDBOXD_INSTANCE": instance,
        "SANDBOXD_POLICIES_DIR": str(policies),
        **(env or {}),
    }
    environment.pop("SANDBOXD_TOKENS_FILE", None)
    with log.open("ab") as sink:
        process = subprocess.Popen([str(SANDBOXD), "serve"], env=environment, stdout=sink, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield Daemon(process, url, instance, log)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
