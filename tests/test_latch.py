"""The pause latch: a pause survives a restart and reaches every worker; only a resume lifts it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sandboxd.metrics import Metrics
from sandboxd.watchdog.latch import Latch
from sandboxd.watchdog.safety import SafetyConfig, ThrottleConfig, disabled
from sandboxd.watchdog.sentinel import Sentinel
from sandboxd.watchdog.webhook import Webhook

CONFIG = disabled().model_copy(update={"throttle": ThrottleConfig()})


def worker(path: Path, events: list[tuple[str, dict[str, Any]]]) -> Sentinel:
    """A sentinel as one worker process has it, sharing the latch file at ``path``."""

    async def record(kind: str, body: Mapping[str, Any]) -> None:
        events.append((kind, dict(body)))

    config: SafetyConfig = CONFIG
    return Sentinel(config, None, metrics=Metrics(), record=record, webhook=Webhook(None), latch=Latch(path))


def test_latch_counts_writes_and_fails_closed_when_corrupt(tmp_path: Path) -> None:
    """Each write bumps seq; a corrupt file reads as paused."""
    latch = Latch(tmp_path / "latch.json")
    assert latch.read() is None
    assert latch.write("paused", "r", "tripwire").seq == 1
    assert latch.write("normal", "r", "token:a").seq == 2
    state = latch.read()
    assert state is not None
    assert (state.seq, state.band) == (2, "normal")
    latch.path.write_text("{not json")
    corrupt = latch.read()
    assert corrupt is not None
    assert corrupt.band == "paused"
    assert latch.write("normal", "fixed", "token:a").seq == 1


def test_pause_reaches_other_workers_and_a_restart(tmp_path: Path) -> None:
    """A tripwire in one worker pauses the others at their next tick and a worker started later;
    an admin resume in any worker lifts it everywhere."""

    async def scenario() -> None:
        path = tmp_path / "throttle-latch.json"
        events: list[tuple[str, dict[str, Any]]] = []
        first, second = worker(path, events), worker(path, events)
        await first.fire("tripwire.test", {"how": "attempted"})
        assert first.throttle is not None
        assert second.throttle is not None
        assert first.throttle.band.value == "paused"
        await second.follow_latch()
        assert second.throttle.band.value == "paused"
        assert second.throttle.history[-1].by == "latch:tripwire"
        restarted = worker(path, events)
        await restarted.follow_latch()  # what start() does first
        assert restarted.throttle is not None
        assert restarted.throttle.band.value == "paused"
        await second.resume("reviewed the transcript", "token:admin1")
        await first.follow_latch()
        await restarted.follow_latch()
        assert [w.throttle.band.value for w in (first, second, restarted) if w.throttle] == ["normal"] * 3
        assert first.throttle.history[-1].by == "latch:token:admin1"
        kinds = [kind for kind, _ in events]
        assert kinds.count("tripwire") == 1
        assert kinds.count("throttle_change") == 6  # each worker's pause and resume

    asyncio.run(scenario())
