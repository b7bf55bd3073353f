"""``azr.planning``: a batch's texts are checked while its first runs already go (FakeBackend: the
overlap is the logic under test here, not isolation)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from test_pool import make_pool, specs

from sandboxd.azr import planning
from sandboxd.executor import Executor, RunFeed
from sandboxd.policy import SandboxPolicy
from sandboxd.run import RunResult, RunSpec
from sandboxd.testing import FakeBackend
from sandboxd.verdict import Status


class _Service:
    """What ``planned_runs`` needs of a Service: ``run_stages``, here straight onto one pool."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    async def run_stages(
        self, policy: SandboxPolicy, stages: Sequence[Sequence[RunSpec] | RunFeed]
    ) -> list[list[RunResult]]:
        return await self.executor.run_stages(policy.name, stages)


def test_runs_start_before_the_last_item_is_checked() -> None:
    async def body() -> None:
        backend = FakeBackend()
        pool = make_pool(backend, fan_out=1, runs_per_container=512, warm_containers=1, max_parallel_runs=2)
        await pool.start()
        items = specs(16 * planning.CHUNK)
        sent_when_made: list[int] = []

        def make(spec: RunSpec) -> list[RunSpec] | None:
            sent_when_made.append(sum(kind == "run" for kind, _ in backend.log))
            return None if items.index(spec) % 3 == 0 else [spec]  # every third item "rejected"

        service: Any = _Service(Executor({"default": pool}))
        judged_with: list[tuple[int, int]] = []

        def judge(index: int, spec: list[RunSpec], runs: list[RunResult]) -> int | None:
            assert spec == [items[index]]
            judged_with.append((index, len(runs)))
            return None if index % 2 else index

        done = await planning.planned_runs(
            service, pool.policy, items, make, lambda item: item or [], bound=len(items), judge=judge
        )
        assert len(done.made) == len(items)  # each item made once, in order
        assert [item is None for item in done.made] == [i % 3 == 0 for i in range(len(items))]
        ran = [i for i in range(len(items)) if i % 3]
        assert sorted(judged_with) == [(i, 1) for i in ran]  # each run item judged once, with its run
        assert done.judged == [i if i % 3 and not i % 2 else None for i in range(len(items))]
        assert [len(runs) for runs in done.runs] == [1 if i % 3 else 0 for i in range(len(items))]
        assert {r.status for runs in done.runs for r in runs} == {Status.OK}
        assert sent_when_made[0] == 0
        assert sent_when_made[-1] > 0  # runs had gone out before the last item was checked
        await pool.close()

    asyncio.run(body())


def test_a_failure_while_checking_stops_the_runs_and_is_raised() -> None:
    async def body() -> None:
        backend = FakeBackend()
        pool = make_pool(backend, fan_out=1, runs_per_container=512, warm_containers=1)
        await pool.start()
        items = specs(3 * planning.CHUNK)

        def make(spec: RunSpec) -> list[RunSpec]:
            if items.index(spec) == 2 * planning.CHUNK:
                raise ValueError("a bug while checking")
            return [spec]

        service: Any = _Service(Executor({"default": pool}))
        with pytest.raises(ValueError, match="a bug while checking"):
            await planning.planned_runs(
                service, pool.policy, items, make, lambda item: item, bound=len(items)
            )
        await pool.close()

    asyncio.run(body())
