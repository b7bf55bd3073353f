"""Pool and executor logic, against the in-memory FakeBackend (no isolation is claimed here)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from sandboxd.exceptions import PoolExhausted
from sandboxd.executor import Executor, RunFeed
from sandboxd.metrics import Metrics
from sandboxd.policy import PAGE_BYTES, RESERVED_PIDS, SPARE_BYTES, SandboxPolicy, load_policies
from sandboxd.pool import (
    MAX_RETIRING,
    QUIET_SECONDS,
    ZYGOTE_DEMAND_SECONDS,
    Pool,
)
from sandboxd.run import RunSpec
from sandboxd.service import configure_message, sandbox_spec
from sandboxd.settings import BUILTIN_POLICIES, Settings
from sandboxd.testing import FakeBackend, FakeHandle
from sandboxd.verdict import Status


def policy(fan_out: int | None = None, runs_per_container: int = 1, **pool: Any) -> SandboxPolicy:
    base = load_policies(BUILTIN_POLICIES)["default"]
    update: dict[str, Any] = {"pool": base.pool.model_copy(update=pool)}
    if fan_out is not None:
        batch = {"max_containers": fan_out, "runs_per_container": runs_per_container}
        update["batch"] = base.batch.model_copy(update=batch)
    return base.model_copy(update=update)


def make_pool(
    backend: FakeBackend, fan_out: int | None = None, runs_per_container: int = 1, **pool: Any
) -> Pool:
    chosen = policy(fan_out, runs_per_container, **pool)
    return Pool(
        chosen,
        backend=backend,
        spec=sandbox_spec(chosen, Settings(image="fake:latest")),
        configure=configure_message(chosen),
        metrics=Metrics(),
    )


async def settle(condition: Callable[[], bool], seconds: float = 2.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.01)


async def warm_pool(backend: FakeBackend, fan_out: int | None = None, **options: Any) -> Pool:
    """A started pool (``make_pool``), once its ``warm_containers`` sandboxes are all warm."""
    pool = make_pool(backend, fan_out, **options)
    await pool.start()
    await settle(lambda: len(pool.warm) == pool.policy.pool.warm_containers)
    return pool


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def specs(count: int) -> list[RunSpec]:
    limits = load_policies(BUILTIN_POLICIES)["default"].limits
    return [RunSpec(job={"kind": "script", "code": f"print({i})"}, limits=limits) for i in range(count)]


def print_one_kills_its_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the run of ``print(1)`` (``specs(n)[1]``) crash whichever fake sandbox runs it."""
    original = FakeHandle._result

    def dying(self: FakeHandle, message: dict[str, Any]) -> dict[str, Any]:
        if message["job"]["code"] == "print(1)":
            self.crash()
            return {"op": "noise"}
        return original(self, message)

    monkeypatch.setattr(FakeHandle, "_result", dying)


def assert_second_stage_waited(backend: FakeBackend) -> dict[str, bool]:
    """No run of the second stage was sent before every run of the first (``-s0-``) was answered;
    returns whether each run id is of the first stage."""
    stage = {run_id: "-s0-" in run_id for _, run_id in backend.log}
    last_first = max(i for i, (kind, run_id) in enumerate(backend.log) if kind == "result" and stage[run_id])
    first_second = min(
        i for i, (kind, run_id) in enumerate(backend.log) if kind == "run" and not stage[run_id]
    )
    assert last_first < first_second, backend.log
    return stage


def test_pool_warms_to_target() -> None:
    """A started pool configures warm_containers sandboxes with the policy's syscalls."""

    async def body() -> None:
        backend = FakeBackend()
        pool = await warm_pool(backend, warm_containers=3, max_starting=2)
        configures = [m for m in backend.received if m["op"] == "configure"]
        assert len(configures) == 3
        assert configures[0]["syscalls"] == list(pool.policy.syscalls)
        assert (
            pool.metrics.registry.get_sample_value(
                "sandboxd_pool_containers", {"policy": "default", "state": "warm"}
            )
            == 3
        )
        await pool.close()

    run(body)


def test_per_request_sandboxes_are_destroyed_after_use() -> None:
    """Under the default policy a sandbox serves one request, then is destroyed and replaced."""

    async def body() -> None:
        backend = FakeBackend()
        pool = make_pool(backend, warm_containers=1, max_requests_per_container=1)
        executor = Executor({"default": pool})
        await pool.start()
        first = await executor.run_batch("default", specs(3))
        second = await executor.run_batch("default", specs(1))
        assert {r.status for r in first + second} == {Status.OK}
        assert first[0].sandbox_id != second[0].sandbox_id
        await settle(lambda: backend.destroyed >= 2)
        await pool.close()

    run(body)


def test_used_sandboxes_are_destroyed_once_the_pool_is_quiet() -> None:
    """A released per-request sandbox waits for a quiet pool before its destroy (which would slow the
    request's response, or the next request), is never leased again meanwhile, and a closing pool
    destroys it at once."""

    async def body() -> None:
        backend = FakeBackend()
        pool = await warm_pool(backend, warm_containers=2, max_requests_per_container=1)
        [used] = await pool.lease(1)
        pool.release(used)
        await asyncio.sleep(QUIET_SECONDS / 4)
        assert backend.destroyed == 0
        assert used in pool.retiring
        assert used not in pool.warm
        [held] = await pool.lease(1)  # a request running keeps the pool busy: nothing is destroyed
        await asyncio.sleep(QUIET_SECONDS * 3)
        assert backend.destroyed == 0
        assert used in pool.retiring
        pool.release(held)
        await settle(lambda: backend.destroyed == 2 and not pool.retiring)
        await settle(lambda: len(pool.warm) == 2)
        [again] = await pool.lease(1)
        assert again is not used
        pool.release(again)
        await pool.close()  # before the pool is quiet: destroyed now, and only once
        assert isinstance(again.handle, FakeHandle)
        assert again.handle.destroyed
        count = backend.destroyed
        await asyncio.sleep(QUIET_SECONDS * 3)
        assert backend.destroyed == count

    run(body)


def test_busy_pool_tops_up_only_to_busy_warm_containers() -> None:
    """While sandboxes are leased the pool keeps busy_warm_containers warm (plus one per waiting lease)
    and starts the rest once quiet; retiring sandboxes beyond MAX_RETIRING go at once."""

    def configures(backend: FakeBackend) -> int:
        return sum(1 for m in backend.received if m["op"] == "configure")

    async def body() -> None:
        backend = FakeBackend()
        pool = await warm_pool(backend, warm_containers=3, busy_warm_containers=1, max_starting=2)
        first = await pool.lease(2)
        await asyncio.sleep(QUIET_SECONDS * 3)
        assert len(pool.warm) == 1  # one warm is enough while busy: no start yet
        assert pool.starting == 0
        assert configures(backend) == 3
        second = await pool.lease(1)
        await settle(lambda: len(pool.warm) == 1)  # below one warm: a start at once, though busy
        assert configures(backend) == 4
        waiting = [asyncio.create_task(pool.lease(1)) for _ in range(3)]  # more than warm: started for them
        held = [box for task in waiting for box in await task]
        assert configures(backend) >= 6
        for box in first + second + held:
            pool.release(box)
        assert len(pool.retiring) == 6
        await settle(lambda: len(pool.warm) == 3 and not pool.retiring and pool.starting == 0)
        assert backend.destroyed == 6
        crowd = await pool.lease(1)
        for _ in range(MAX_RETIRING + 2):  # released while busy: only MAX_RETIRING wait for quiet
            [box] = await pool.lease(1)
            pool.release(box)
            assert len(pool.retiring) <= MAX_RETIRING
        await settle(lambda: backend.destroyed >= 6 + 2)
        pool.release(crowd[0])
        await settle(lambda: not pool.retiring and len(pool.warm) == 3)
        await pool.close()

    run(body)


def test_default_pool_refills_at_once_without_busy_warm_containers() -> None:
    """busy_warm_containers None (the pooled policy): a lease starts its replacement at once."""

    async def body() -> None:
        backend = FakeBackend()
        pool = await warm_pool(backend, warm_containers=2, busy_warm_containers=None)
        held = await pool.lease(1)
        await settle(lambda: len(pool.warm) == 2, seconds=QUIET_SECONDS / 2 + 1)
        assert pool.leased == set(held)
        await pool.close()

    run(body)


def test_new_sandboxes_prestart_the_zygotes_that_runs_needed_lately() -> None:
    """After a run that went to the heavy zygote, sandboxes configured from then on are asked to start it
    at configure; before, and once ZYGOTE_DEMAND_SECONDS have passed, they are not. Other zygotes never."""

    def prestarts(backend: FakeBackend) -> list[list[str] | None]:
        return [m.get("prestart") for m in backend.received if m["op"] == "configure"]

    async def body() -> None:
        now = [1000.0]
        backend = FakeBackend()
        pool = make_pool(backend, warm_containers=1)
        pool.clock = lambda: now[0]
        executor = Executor({"default": pool})
        limits = specs(1)[0].limits

        async def one(code: str, **job: Any) -> None:
            spec = RunSpec(job={"kind": "script", "code": code, **job}, limits=limits)
            [result] = await executor.run_batch("default", [spec])
            assert result.status == Status.OK
            now[0] += QUIET_SECONDS  # each lease starts a replacement: the configures are counted below
            await settle(lambda: len(pool.warm) == 1 and pool.starting == 0)

        await pool.start()
        await settle(lambda: len(pool.warm) == 1)
        await one("print(1)")
        await one("print(1)", hash_seed=7)  # a seed:7 zygote: never prestarted
        await one("import numpy\nprint(1)")  # its replacement was configured at its lease, before it ran
        assert prestarts(backend) == [None, None, None, None]
        await one("print(2)")
        assert prestarts(backend)[-1] == ["heavy"]
        now[0] += ZYGOTE_DEMAND_SECONDS
        await one("print(3)")
        assert prestarts(backend)[-1] is None
        await pool.close()

    run(body)


def test_a_replacement_forks_the_spares_its_predecessor_ran_and_leases_take_the_best_fit() -> None:
    """A sandbox retired after a request of n runs is replaced by one that forks min(n, cap) warm spares
    (none before any request), and a request leases the warm sandboxes whose spares fit its runs per
    sandbox best: the fewest that cover them, else the most."""

    def spares(backend: FakeBackend) -> list[int | None]:
        return [m.get("spares") for m in backend.received if m["op"] == "configure"]

    async def body() -> None:
        now = [1000.0]
        backend = FakeBackend()
        pool = make_pool(backend, fan_out=2, runs_per_container=8, warm_containers=3, warm_spares=6)
        pool.clock = lambda: now[0]
        executor = Executor({"default": pool})

        async def batch(count: int) -> set[str]:
            results = await executor.run_batch("default", specs(count))
            assert {result.status for result in results} == {Status.OK}
            now[0] += 2 * QUIET_SECONDS  # (twice: the clock's sums round)
            await settle(lambda: len(pool.warm) == 3 and pool.starting == 0)
            return {str(result.sandbox_id) for result in results}

        def warm() -> list[int]:
            return sorted(box.spares for box in pool.warm)

        await pool.start()
        await settle(lambda: len(pool.warm) == 3)
        assert warm() == [0, 0, 0]
        await batch(3)  # one sandbox ran 3
        assert warm() == [0, 0, 3]
        await batch(5)  # the one with spares is the only one that can cover 5: ran 5, replaced by 5
        assert warm() == [0, 0, 5]
        await batch(12)  # two sandboxes, 6 runs each: the one with 5 spares and one with none
        assert warm() == [0, 6, 6]
        await batch(2)  # the fewest spares that cover 2: none has 2, so one of the two with 6
        assert warm() == [0, 2, 6]
        await batch(40)  # 20 runs each: the cap, and the two with the most go first
        assert warm() == [0, 6, 6]
        assert spares(backend)[:3] == [None, None, None]
        assert spares(backend)[3:] == [3, 5, 6, 6, 2, 6, 6]
        await pool.close()

    run(body)


def test_the_warm_spares_keep_the_pids_and_memory_the_container_needs_for_the_rest() -> None:
    """The cap is pool.warm_spares within container.pids_limit - RESERVED_PIDS, and within the memory the
    container has beyond its children at the memory cap and the fork-server (SPARE_BYTES and spare_pages
    pages each)."""
    base = load_policies(BUILTIN_POLICIES)["default"]
    assert base.warm_spares_cap == 256  # the default policy: 280 pids, 4.75 GiB

    def container(**update: Any) -> SandboxPolicy:
        return base.model_copy(update={"container": base.container.model_copy(update=update)})

    assert container(pids_limit=30).warm_spares_cap == 30 - RESERVED_PIDS
    assert container(pids_limit=8).warm_spares_cap == 0
    each = SPARE_BYTES + base.pool.spare_pages * PAGE_BYTES
    children = base.pool.max_parallel_runs * base.caps.memory_bytes + 64 * 1024 * 1024
    assert container(memory_bytes=children + 10 * each + 1).warm_spares_cap == 10
    assert container(memory_bytes=children).warm_spares_cap == 0
    without_pages = base.model_copy(update={"pool": base.pool.model_copy(update={"spare_pages": 0})})
    assert without_pages.warm_spares_cap == 256


def test_stages_share_their_sandboxes_and_run_one_after_another() -> None:
    """``run_stages``: the second stage starts only once every run of the first has been answered, on
    the same sandboxes (how /v1/azr/check runs expected outputs before the answers)."""

    async def body() -> None:
        backend = FakeBackend()
        pool = make_pool(backend, fan_out=1, runs_per_container=512, warm_containers=1, max_parallel_runs=2)
        await pool.start()
        first, second = await Executor({"default": pool}).run_stages("default", [specs(3), specs(5)])
        assert len(first) == 3
        assert len(second) == 5
        assert {r.status for r in first + second} == {Status.OK}
        assert len({r.sandbox_id for r in first + second}) == 1
        stage = assert_second_stage_waited(backend)
        assert sum(stage.values()) == 3
        await pool.close()

    run(body)


def test_reuse_policy_keeps_sandbox_warm() -> None:
    """With max_requests_per_container > 1, consecutive requests share a sandbox until the cap."""

    async def body() -> None:
        backend = FakeBackend()
        pool = await warm_pool(backend, warm_containers=1, max_requests_per_container=2)
        executor = Executor({"default": pool})
        ids = [(await executor.run_batch("default", specs(1)))[0].sandbox_id for _ in range(3)]
        assert ids[0] == ids[1] != ids[2]
        await pool.close()

    run(body)


def test_batch_results_keep_order_and_spread() -> None:
    """A batch fans out over up to max_containers sandboxes and returns results in request order."""

    async def body() -> None:
        backend = FakeBackend()
        pool = await warm_pool(backend, fan_out=2, warm_containers=2)
        executor = Executor({"default": pool})
        results = await executor.run_batch("default", specs(40))
        assert len(results) == 40
        assert len({r.sandbox_id for r in results}) == 2
        codes = [m["job"]["code"] for m in backend.received if m["op"] == "run"]
        assert sorted(codes) == sorted(f"print({i})" for i in range(40))
        await pool.close()

    run(body)


@pytest.mark.parametrize(
    ("runs", "per_container", "containers"), [(40, 20, 2), (41, 20, 3), (40, 512, 1), (9, 1, 3)]
)
def test_batch_wants_one_container_per_runs_per_container(
    runs: int, per_container: int, containers: int
) -> None:
    """A batch fans out over one sandbox per ``runs_per_container`` runs, at most ``max_containers``."""

    async def body() -> None:
        backend = FakeBackend()
        pool = await warm_pool(backend, fan_out=3, runs_per_container=per_container, warm_containers=3)
        executor = Executor({"default": pool})
        results = await executor.run_batch("default", specs(runs))
        assert len({r.sandbox_id for r in results}) == containers
        await pool.close()

    run(body)


def test_dead_idle_sandbox_is_replaced() -> None:
    """A warm sandbox whose stream ends is dropped and the pool starts a replacement."""

    async def body() -> None:
        backend = FakeBackend()
        pool = await warm_pool(backend, warm_containers=1)
        victim = pool.warm[0]
        backend.created[0].crash()
        await settle(lambda: not victim.alive)
        results = await Executor({"default": pool}).run_batch("default", specs(1))
        assert results[0].status is Status.OK
        assert results[0].sandbox_id != victim.id
        await pool.close()

    run(body)


def test_start_failures_back_off_and_exhaust() -> None:
    """When the engine refuses, the lease fails with PoolExhausted naming the last start error."""

    async def body() -> None:
        backend = FakeBackend()
        backend.fail_starts = True
        pool = make_pool(backend, warm_containers=1, admission_timeout_seconds=0.3)
        await pool.start()
        with pytest.raises(PoolExhausted, match="refuses"):
            await pool.lease(1)
        failures = pool.metrics.registry.get_sample_value(
            "sandboxd_container_start_failures_total", {"policy": "default"}
        )
        assert failures is not None
        assert failures >= 1
        backend.fail_starts = False
        await asyncio.sleep(0.3)
        pool._refill()
        await settle(lambda: len(pool.warm) == 1, seconds=12)
        await pool.close()

    run(body)


def test_sandbox_death_mid_batch_is_retried_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run whose sandbox dies is retried once on a fresh sandbox; a second death is infrastructure_error."""

    print_one_kills_its_sandbox(monkeypatch)

    async def body() -> None:
        backend = FakeBackend()
        pool = await warm_pool(backend, warm_containers=1, max_parallel_runs=1)
        results = await Executor({"default": pool}).run_batch("default", specs(5))
        statuses = [r.status for r in results]
        assert statuses[1] is Status.INFRASTRUCTURE_ERROR
        assert statuses.count(Status.OK) == 4
        assert len(backend.created) >= 3
        await pool.close()

    run(body)


def test_admission_queue_is_bounded() -> None:
    """Once max_waiting_requests wait for a sandbox, the next request is refused at once."""

    async def body() -> None:
        backend = FakeBackend()
        backend.fail_starts = True
        pool = make_pool(backend, warm_containers=1, admission_timeout_seconds=5, max_waiting_requests=2)
        await pool.start()
        waiting = [asyncio.create_task(pool.lease(1)) for _ in range(2)]
        await settle(lambda: pool.waiters == 2)
        started = asyncio.get_running_loop().time()
        with pytest.raises(PoolExhausted, match="max_waiting_requests"):
            await pool.lease(1)
        assert asyncio.get_running_loop().time() - started < 0.5
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        await pool.close()

    run(body)


def test_a_feed_runs_its_first_specs_before_it_is_closed() -> None:
    """A ``RunFeed`` stage (how the AZR endpoints plan while they run): runs start as specs arrive, the
    stage ends only once the feed is closed, and results keep the feed's order."""

    async def body() -> None:
        backend = FakeBackend()
        pool = make_pool(backend, fan_out=1, runs_per_container=512, warm_containers=1, max_parallel_runs=2)
        await pool.start()
        feed = RunFeed(bound=3)
        running = asyncio.create_task(Executor({"default": pool}).run_stages("default", [feed]))
        first, second, third = specs(3)
        feed.put(first)
        feed.put(second)
        await settle(lambda: sum(kind == "result" for kind, _ in backend.log) == 2)
        assert not running.done()  # the feed is still open
        feed.put(third)
        feed.close()
        [results] = await running
        assert [r.status for r in results] == [Status.OK] * 3
        assert len({r.sandbox_id for r in results}) == 1
        sent = [run_id.rsplit("-", 1)[1].split(".")[0] for kind, run_id in backend.log if kind == "run"]
        assert sent == ["0", "1", "2"]
        await pool.close()

    run(body)


def test_each_result_is_observed_and_counted_as_its_run_ends() -> None:
    """``run_stages`` hands each final result to ``observe`` (and counts it in the run metrics) when its run
    ends, while the stage goes on: the honeytoken search and the violation count overlap the other runs
    instead of holding up the response after the last one."""

    async def body() -> None:
        backend = FakeBackend()
        pool = make_pool(backend, fan_out=1, runs_per_container=512, warm_containers=1, max_parallel_runs=2)
        await pool.start()
        observed: list[Any] = []
        feed = RunFeed(bound=2)
        running = asyncio.create_task(
            Executor({"default": pool}).run_stages("default", [feed], observed.append)
        )
        first, second = specs(2)
        feed.put(first)
        await settle(lambda: len(observed) == 1)
        assert not running.done()  # the feed is still open
        ok_runs = {"status": "ok", "policy": "default"}
        assert pool.metrics.registry.get_sample_value("sandboxd_runs_total", ok_runs) == 1
        feed.put(second)
        feed.close()
        [results] = await running
        assert [id(r) for r in observed] == [id(r) for r in results]  # each final result once
        assert pool.metrics.registry.get_sample_value("sandboxd_runs_total", ok_runs) == 2
        await pool.close()

    run(body)


def test_a_feed_that_closes_empty_leases_nothing() -> None:
    """A request whose texts were all rejected on the trusted side costs no sandbox."""

    async def body() -> None:
        backend = FakeBackend()
        pool = await warm_pool(backend, warm_containers=1)
        feed = RunFeed(bound=5)
        running = asyncio.create_task(Executor({"default": pool}).run_stages("default", [[], feed]))
        await asyncio.sleep(0.05)
        feed.close()
        assert await running == [[], []]
        assert backend.destroyed == 0
        assert len(pool.warm) == 1
        assert not backend.log
        await pool.close()

    run(body)


def test_a_feed_stage_waits_for_the_stage_before_it() -> None:
    """Specs fed while the first stage runs still start only once every run of it has been answered."""

    async def body() -> None:
        backend = FakeBackend()
        pool = make_pool(backend, fan_out=1, runs_per_container=512, warm_containers=1, max_parallel_runs=2)
        await pool.start()
        feed = RunFeed(bound=4)
        for spec in specs(4):
            feed.put(spec)
        feed.close()
        first, second = await Executor({"default": pool}).run_stages("default", [specs(6), feed])
        assert len(first) == 6
        assert len(second) == 4
        assert_second_stage_waited(backend)
        await pool.close()

    run(body)


def test_feed_order_and_retries() -> None:
    """``next`` hands out specs in order, a retried one before anything not yet started, and ``None``
    once the feed is closed and drained."""

    async def body() -> None:
        feed = RunFeed(bound=3, specs=specs(2))
        assert await feed.next() == 0
        feed.retry(0)
        assert feed.backlog == 2
        assert [await feed.next(), await feed.next()] == [0, 1]
        waiting = asyncio.create_task(feed.next())
        await asyncio.sleep(0.01)
        assert not waiting.done()
        feed.put(specs(1)[0])
        assert await waiting == 2
        assert feed.unfinished
        feed.close()
        assert not feed.unfinished
        assert await feed.next() is None
        with pytest.raises(RuntimeError):
            feed.put(specs(1)[0])

    run(body)


def test_idle_workers_get_specs_in_turn() -> None:
    """Workers waiting in ``next`` get the specs put in the order they began to wait; a waiter that was
    cancelled is passed over; closing ends every waiter."""

    async def body() -> None:
        feed = RunFeed(bound=4)
        waiting = [asyncio.create_task(feed.next()) for _ in range(3)]
        await asyncio.sleep(0.01)
        feed.put(specs(1)[0])
        await asyncio.sleep(0.01)
        assert [task.done() for task in waiting] == [True, False, False]
        assert waiting[0].result() == 0
        waiting[1].cancel()
        await asyncio.sleep(0.01)
        feed.put(specs(1)[0])  # skips the cancelled waiter
        await asyncio.sleep(0.01)
        assert waiting[2].done()
        assert waiting[2].result() == 1
        late = asyncio.create_task(feed.next())
        await asyncio.sleep(0.01)
        feed.close()
        assert await late is None

    run(body)


def test_sandbox_death_while_a_feed_fills(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sandbox that dies while its feed is still open: the run is retried once on a fresh sandbox,
    specs fed afterwards still run there, and the stage ends once the feed is closed (no hang)."""

    print_one_kills_its_sandbox(monkeypatch)

    async def body() -> None:
        backend = FakeBackend()
        pool = await warm_pool(backend, warm_containers=1, max_parallel_runs=1)
        feed = RunFeed(bound=5)
        running = asyncio.create_task(Executor({"default": pool}).run_stages("default", [feed]))
        first, killer, *rest = specs(5)
        feed.put(first)
        feed.put(killer)
        await settle(lambda: len(backend.created) >= 3, seconds=12)  # both deaths, fresh sandboxes
        for spec in rest:
            feed.put(spec)
        feed.close()
        async with asyncio.timeout(12):
            [results] = await running
        statuses = [r.status for r in results]
        assert statuses[1] is Status.INFRASTRUCTURE_ERROR
        assert statuses.count(Status.OK) == 4
        await pool.close()

    run(body)
