"""The pause latch: a small file in ``data_dir`` that makes ``paused``/``halted`` survive restarts and
reach every worker process.

Each write bumps ``seq``. A worker that sees a newer ``seq`` than it has applied follows it: a stopped band
pauses it, and ``normal`` (written by an admin resume) lifts its pause. An unreadable file counts as
paused (fail closed) until a resume rewrites it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class LatchState:
    seq: int
    band: str  # "paused", "halted" or "normal"
    reason: str
    by: str


class Latch:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _read(self) -> LatchState | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            return LatchState(-1, "paused", f"throttle latch unreadable: {exc}", "latch")
        try:
            data = json.loads(raw)
            return LatchState(int(data["seq"]), str(data["band"]), str(data["reason"]), str(data["by"]))
        except (ValueError, KeyError, TypeError):
            return LatchState(-1, "paused", f"throttle latch {self.path} is corrupt", "latch")

    def read(self) -> LatchState | None:
        """The latest state, None if nothing was ever latched."""
        with self._locked():
            return self._read()

    def write(self, band: str, reason: str, by: str) -> LatchState:
        """Latch ``band`` with the next ``seq``; atomic (temporary file, then rename)."""
        with self._locked():
            current = self._read()
            state = LatchState(max(current.seq if current else 0, 0) + 1, band, reason[:500], by)
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(asdict(state)), encoding="utf-8")
            os.replace(temporary, self.path)
            return state
