"""Crash durability of the ledger in the real daemon: SIGKILL ``sandboxd serve`` under load, restart it, and
find an entry for every request that was acknowledged, in a log that verifies."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from sandboxd.ledger.entry import Entry
from sandboxd.ledger.stores import open_store
from sandboxd.settings import BUILTIN_POLICIES
from sandboxd.testing import free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]
SANDBOXD = Path(sys.executable).with_name("sandboxd")
CLIENTS = 6
KILL_AFTER = 40  # acknowledged requests before the SIGKILL
PROGRAM = "def f(x):\n    return x * 2"
REQUESTS = [  # (path, body, entries it appends)
    ("/v1/azr/validate", {"tasks": [{"task_type": "deduction", "program": PROGRAM, "inputs": ["3"]}] * 2}, 2),
    ("/v1/azr/check", {"answers": [{"task_type": "deduction", "answer": "6", "expected_output": "6"}]}, 1),
    ("/v1/runs", {"code": "print(sum(range(10)))"}, 1),
    ("/v1/runs/batch", {"runs": [{"code": "print(1)"}, {"code": "print(2)"}, {"code": "print(3)"}]}, 3),
]


def _policies(directory: Path) -> Path:
    """The built-in policies with two warm containers each, to keep the daemon cheap to start."""
    directory.mkdir()
    for source in BUILTIN_POLICIES.glob("*.yaml"):
        text = re.sub(r"warm_containers: \d+", "warm_containers: 2", source.read_text())
        (directory / source.name).write_text(text)
    return directory


class Daemon:
    """``sandboxd serve`` as a subprocess with its own instance name, data dir and port."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = tmp_path / "data"
        self.log = tmp_path / "serve.log"
        self.env = {
            **os.environ,
            "SANDBOXD_INSTANCE": f"test-ledger-{uuid.uuid4().hex[:8]}",
            "SANDBOXD_POLICIES_DIR": str(_policies(tmp_path / "policies")),
            "SANDBOXD_DATA_DIR": str(self.data),
            "SANDBOXD_PORT": str(self.port),
            "SANDBOXD_LEDGER_CHECKPOINT_ENTRIES": "25",
        }
        self.env.pop("SANDBOXD_TOKENS_FILE", None)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([str(SANDBOXD), "serve"], env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "sandboxd did not become ready"
            time.sleep(0.2)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(timeout=30) == -signal.SIGKILL

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _load(
    url: str, acknowledged: dict[str, int], stop: threading.Event, counter: itertools.count[int]
) -> None:
    """Send requests until stopped, recording each 200's request id and how many entries it appended."""
    with httpx.Client(base_url=url, timeout=60) as client:
        while not stop.is_set():
            number = next(counter)
            path, body, count = REQUESTS[number % len(REQUESTS)]
            rid = f"dur-{number}-{uuid.uuid4().hex[:8]}"
            try:
                response = client.post(path, json=body, headers={"X-Request-ID": rid})
            except httpx.TransportError:
                return  # the daemon died under us: this request was never acknowledged
            if response.status_code == 200:
                assert response.headers["x-request-id"] == rid
                acknowledged[rid] = count


def test_sigkill_under_load_keeps_every_acknowledged_entry(tmp_path: Path) -> None:
    """Every request answered 200 before a SIGKILL has all its entries after a restart, and verify passes."""
    daemon = Daemon(tmp_path)
    acknowledged: dict[str, int] = {}
    try:
        daemon.start()
        stop, counter = threading.Event(), itertools.count()
        threads = [
            threading.Thread(target=_load, args=(daemon.url, acknowledged, stop, counter))
            for _ in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 240
        while len(acknowledged) < KILL_AFTER and time.monotonic() < deadline:
            time.sleep(0.05)
        daemon.kill()  # mid-load: other requests are in flight
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        assert len(acknowledged) >= KILL_AFTER
        daemon.start()  # the restarted daemon reopens the same ledger (and removes the orphaned containers)
        after = httpx.post(f"{daemon.url}/v1/runs", json={"code": "print(1)"}, timeout=60)
        assert after.status_code == 200
    finally:
        daemon.stop()
    db = daemon.data / "ledger.db"
    store = open_store(str(db))
    try:
        found: dict[str, int] = {}
        for row in store.entries():
            rid = Entry.decode(row.data).body.get("request_id")
            found[rid] = found.get(rid, 0) + 1
    finally:
        store.close()
    missing = {rid: count for rid, count in acknowledged.items() if found.get(rid) != count}
    assert not missing, f"{len(missing)} acknowledged requests lost entries: {sorted(missing)[:5]}"
    verified = subprocess.run(
        [str(SANDBOXD), "ledger", "verify", "--db", str(db), "--key", str(daemon.data / "ledger.key.pub")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    assert "ok:" in verified.stdout
