"""Admission decisions and outage handling as pure logic, against the in-memory FakeBackend."""

from __future__ import annotations

import asyncio

import pytest
from test_pool import make_pool, run, settle

from sandboxd.api.admission import Admission
from sandboxd.exceptions import BackendUnavailable
from sandboxd.testing import FakeBackend

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("inflight", "held", "draining", "declared", "refused"),
    [
        pytest.param(0, 0, False, 30 * MiB, None, id="lone-request-always-admitted"),
        pytest.param(0, 0, False, 200 * MiB, None, id="lone-request-over-budget-still-admitted"),
        pytest.param(1, 10 * MiB, False, 30 * MiB, None, id="fits-in-budget"),
        pytest.param(1, 40 * MiB, False, 30 * MiB, "overloaded", id="over-byte-budget"),
        pytest.param(4, 0, False, 0, "overloaded", id="over-request-cap"),
        pytest.param(0, 0, True, 0, "shutting_down", id="draining"),
        pytest.param(4, 60 * MiB, True, 0, "shutting_down", id="draining-wins"),
    ],
)
def test_refusal(inflight: int, held: int, draining: bool, declared: int, refused: str | None) -> None:
    """Work is refused while draining, over the request cap, or over the body-byte budget."""
    admission = Admission(max_requests=4, max_body_bytes=64 * MiB, inflight=inflight, body_bytes=held)
    admission.draining = draining
    decision = admission.refusal(declared)
    assert (decision[0] if decision else None) == refused


def test_wait_idle_returns_when_the_last_request_leaves() -> None:
    """Draining waits for in-flight requests, and gives up after its timeout."""

    async def body() -> None:
        admission = Admission(max_requests=4, max_body_bytes=MiB)
        admission.enter(100)
        assert not await admission.wait_idle(0.05)
        asyncio.get_running_loop().call_later(0.05, admission.leave, 100)
        assert await admission.wait_idle(2)
        assert admission.body_bytes == 0

    run(body)


def test_outage_fails_waiting_leases_at_once_and_clears() -> None:
    """While the engine is down, waiting and new leases fail at once; afterwards pools start again."""

    async def body() -> None:
        backend = FakeBackend()
        backend.fail_starts = True
        pool = make_pool(backend, warm_containers=1, admission_timeout_seconds=30)
        await pool.start()
        waiting = asyncio.create_task(pool.lease(1))
        await settle(lambda: pool.waiters == 1)
        await pool.set_outage("docker engine unreachable")
        with pytest.raises(BackendUnavailable, match="unreachable"):
            await asyncio.wait_for(waiting, 1)
        with pytest.raises(BackendUnavailable, match="unreachable"):
            await pool.lease(1)
        backend.fail_starts = False
        await pool.set_outage(None)
        await pool.start()
        await settle(lambda: len(pool.warm) == 1, seconds=5)
        assert len(await pool.lease(1)) == 1
        await pool.close()

    run(body)
