"""``azr.planning``: a batch's texts are checked while its first runs already go (FakeBackend: the
overlap is the logic under test here, not isolation)."""

from __future__ import annotations

import asyncio
import gc
import uuid
import weakref
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from test_pool import make_pool, specs

from sandboxd.api.app import create_app
from sandboxd.azr import planning
from sandboxd.executor import Executor, RunFeed
from sandboxd.policy import SandboxPolicy
from sandboxd.run import RunResult, RunSpec
from sandboxd.settings import BUILTIN_POLICIES, Settings
from sandboxd.testing import FakeBackend, running_server
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


def _post(url: str, body: dict[str, Any]) -> httpx.Response:
    """One in-process POST to an app on a fake backend whose lifespan never runs: any sandbox use
    fails with 503."""
    settings = Settings(instance="planning-offline", policies_dir=BUILTIN_POLICIES, warm_pools=False)
    app = create_app(settings, backend=FakeBackend())

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandboxd.test") as http:
            return await http.post(url, json=body)

    return asyncio.run(send())


def test_batches_rejected_on_the_trusted_side_need_no_sandbox() -> None:
    """Texts rejected on the trusted side (and literal deduction answers) are answered while isolation
    is unavailable; one item that needs a run makes the batch need a sandbox (503)."""
    bad = {"task_type": "deduction", "program": "def f(x) return x", "inputs": ["1"]}
    good = {"task_type": "deduction", "program": "def f(x):\n    return x", "inputs": ["1"]}
    validated = _post("/v1/azr/validate", {"tasks": [bad, bad]})
    assert validated.status_code == 200, validated.text
    assert [r["reason"] for r in validated.json()["results"]] == ["syntax_error", "syntax_error"]
    assert _post("/v1/azr/validate", {"tasks": [bad, good]}).status_code == 503
    literal = {"task_type": "deduction", "input": "1", "expected_output": "[1, 2]", "answer": "[1, 2]"}
    wrong = {**literal, "answer": "[2, 1]"}
    checked = _post("/v1/azr/check", {"answers": [literal, wrong]})
    assert checked.status_code == 200, checked.text
    assert [r["correct"] for r in checked.json()["results"]] == [True, False]
    needs_run = {
        "task_type": "abduction",
        "program": "def f(x):\n    return x",
        "expected_output": "1",
        "answer": "1",
    }
    assert _post("/v1/azr/check", {"answers": [literal, needs_run]}).status_code == 503


def test_a_batch_is_freed_without_the_cycle_collector() -> None:
    """Nothing of a request outlives it in a reference cycle: the daemon's collector runs full
    collections rarely (heap.py), so a cycle would keep every request's texts and runs for minutes."""

    class Made:
        def __init__(self, spec: RunSpec) -> None:
            self.specs = [spec]

    async def body() -> weakref.ref[Made]:
        backend = FakeBackend()
        pool = make_pool(backend, fan_out=1, runs_per_container=512, warm_containers=1)
        await pool.start()
        service: Any = _Service(Executor({"default": pool}))
        done = await planning.planned_runs(
            service,
            pool.policy,
            specs(2 * planning.CHUNK),
            Made,
            lambda made: made.specs,
            bound=2 * planning.CHUNK,
            judge=lambda index, made, runs: index,
        )
        first = weakref.ref(done.made[0])
        await pool.close()
        return first

    gc.collect()
    gc.disable()
    try:
        first = asyncio.run(body())
        assert first() is None
    finally:
        gc.enable()


def test_azr_requests_leave_nothing_to_the_cycle_collector() -> None:
    """Whole AZR requests through a served app (fake backend): none of their objects ends up in cyclic
    garbage, which the daemon frees only at a rare full collection (heap.py). The feed-batch cycle that
    kept about 15 MB per AZR step is the kind this catches: it lists the RunFeed, the batch, every plan,
    spec and result."""
    tasks = [
        {"task_type": "deduction", "program": "def f(x):\n    return x + 1", "inputs": ["1"]},
        {"task_type": "induction", "program": "def f(x):\n    return x * 2", "inputs": ["1", "2"]},
    ]
    answers = [
        {"task_type": "deduction", "input": "1", "expected_output": "2", "answer": "2"},
        {
            "task_type": "abduction",
            "program": "def f(x):\n    return x + 1",
            "expected_output": "2",
            "answer": "1",
        },
        {
            "task_type": "induction",
            "answer": "def f(x):\n    return x * 2",
            "inputs": ["1"],
            "outputs": ["2"],
        },
        {  # an expected output that needs a sandbox: the first stage
            "task_type": "deduction",
            "imports": ["from collections import Counter"],
            "input": "1",
            "expected_output": "Counter({1: 2})",
            "answer": "Counter({1: 2})",
        },
    ]
    settings = Settings(instance=f"test-cycles-{uuid.uuid4().hex[:8]}", policies_dir=BUILTIN_POLICIES)
    with (
        running_server(settings, backend=FakeBackend()) as url,
        httpx.Client(base_url=url, timeout=60.0) as http,
    ):

        def step() -> None:
            assert http.post("/v1/azr/validate", json={"tasks": tasks}).status_code == 200
            assert http.post("/v1/azr/check", json={"answers": answers}).status_code == 200

        step()  # first-use caches and the pools' own objects are made before the count
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            step()
            step()
            gc.collect()
            ours = sorted(
                {
                    f"{type(o).__module__}.{type(o).__qualname__}"
                    for o in gc.garbage
                    if type(o).__module__.startswith("sandboxd")
                }
            )
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    assert ours == []
