"""Helpers for the runtime-safety tests: a policies directory with a safety file, a webhook receiver."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from sandboxd.settings import BUILTIN_POLICIES

TRIPWIRE_PACKS = BUILTIN_POLICIES / "safety" / "tripwires"
WATCHDOGGED = """\
schema_version: 1
kind: sandbox
name: watchdogged
extends: default
description: The default policy with the static watchdog on (default packs).
watchdog:
  enabled: true
"""


def safety_yaml(**throttle: Any) -> str:
    """A safety file with quick evaluation, the shipped tripwire packs, and ``throttle`` overrides."""
    body = {
        "schema_version": 1,
        "kind": "safety",
        "name": "test",
        "description": "Runtime safety for tests.",
        "throttle": {"evaluate_interval_seconds": 0.2, "stale_after_seconds": 5, **throttle},
        "tripwires": {"packs_dir": str(TRIPWIRE_PACKS)},
    }
    return yaml.safe_dump(body)


def make_policies(directory: Path, safety: str | None, *, extra: dict[str, str] | None = None) -> Path:
    """Built-in sandbox policies, ``watchdogged``, and (unless None) ``safety/config.yaml``."""
    directory.mkdir(parents=True, exist_ok=True)
    for source in BUILTIN_POLICIES.glob("*.yaml"):
        shutil.copy(source, directory / source.name)
    (directory / "watchdogged.yaml").write_text(WATCHDOGGED)
    for name, text in (extra or {}).items():
        (directory / name).write_text(text)
    if safety is not None:
        (directory / "safety").mkdir(exist_ok=True)
        (directory / "safety" / "config.yaml").write_text(safety)
    return directory


class WebhookReceiver:
    """A loopback HTTP server that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        received = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    @contextmanager
    def running(self) -> Iterator[WebhookReceiver]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.events)

    def wait_for_rule(self, rule: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while not any(e.get("rule") == rule for e in self.events) and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.events)
