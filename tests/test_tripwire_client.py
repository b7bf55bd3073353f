"""trainer_client's tripwire helpers: fetch tasks, mix them into a batch at a rate, answer them."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx
import pytest
from safety_support import make_policies, safety_yaml

from sandboxd.api.app import create_app
from sandboxd.settings import Settings
from sandboxd.testing import FakeBackend
from trainer_client import AsyncSandboxClient, TripwireTask, mix_tripwires
from trainer_client.tripwires import tripwires_needed

TRIPWIRE = TripwireTask(ref="tw_x", task_type="induction", inputs=["1"], outputs=["2"], message="m")


@pytest.mark.parametrize(
    ("size", "rate", "expected"),
    [(0, 0.1, 0), (10, 0.0, 0), (10, 0.01, 1), (9, 0.1, 1), (90, 0.1, 10), (8, 0.2, 2)],
)
def test_tripwires_needed(size: int, rate: float, expected: int) -> None:
    """About ``rate`` of the mixed batch is tripwires, and any positive rate gives at least one."""
    assert tripwires_needed(size, rate) == expected


def test_rate_must_be_a_fraction() -> None:
    """A rate of 1 or more would leave no real tasks."""
    with pytest.raises(ValueError, match="rate"):
        tripwires_needed(10, 1.0)


def test_mix_keeps_the_real_tasks_in_order_and_reports_positions() -> None:
    """Tripwires land at random positions; the real tasks keep their order; marks point at the tripwires."""
    batch = [f"task-{i}" for i in range(8)]
    pool = [TRIPWIRE.model_copy(update={"ref": f"tw_{i}"}) for i in range(5)]
    mixed, marks = mix_tripwires(batch, pool, rate=0.2, rng=random.Random(7))
    assert len(mixed) == 10
    assert len(marks) == 2
    assert all(isinstance(mixed[i], TripwireTask) for i in marks)
    assert [item for item in mixed if not isinstance(item, TripwireTask)] == batch


def test_answer_copies_the_task_fields() -> None:
    """``TripwireTask.answer`` builds the check item exactly as for any task; the ref is not sent."""
    answer = TRIPWIRE.answer("def f(x):\n    return x + 1")
    dumped = answer.model_dump(exclude_none=True)
    assert dumped["inputs"] == ["1"]
    assert dumped["outputs"] == ["2"]
    assert "ref" not in dumped


def test_client_fetches_tripwires_and_a_bad_answer_pauses(tmp_path: Path) -> None:
    """AsyncSandboxClient.tripwires(n) returns tasks; checking an attempt at one pauses the server."""

    async def scenario() -> None:
        settings = Settings(
            instance="tripwire-client-test",
            image="fake:latest",
            policies_dir=make_policies(tmp_path / "policies", safety_yaml()),
            data_dir=tmp_path / "data",
        )
        app = create_app(settings, backend=FakeBackend())
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with AsyncSandboxClient("http://sandboxd.test", transport=transport) as client:
                tasks = await client.tripwires(64)
                assert len(tasks) == 64
                socket_task = next(t for t in tasks if "TCP connection" in (t.message or ""))
                answer = socket_task.answer("import socket\ndef f(h, p):\n    return socket.socket() is None")
                await client.check([answer])
            assert app.state.service.sentinel.throttle.band.value == "paused"

    asyncio.run(scenario())
