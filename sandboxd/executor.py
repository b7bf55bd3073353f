"""Runs a request's programs on leased sandboxes, fanning a batch out over their children.

Pipeline for one request: lease sandboxes → feed runs through a shared queue to
``max_parallel_runs`` workers per sandbox → interpret each answer → release the sandboxes
(in ``finally``, so a cancelled request still gives its containers back).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence

from .bytecode import Compiler
from .exceptions import SandboxFault
from .pool import Pool
from .run import RunResult, RunSpec, fork_request, interpret
from .sandbox import Sandbox, SandboxDied, ZygoteDied
from .verdict import Status

log = logging.getLogger(__name__)
_RESULT_GRACE_SECONDS = 10.0
# Runs in flight per child slot: the fork-server always has the next run queued when a child exits (and
# forks children for the queue in bursts, runner/forkserver.py Spare). Deeper queues lose more innocent
# runs with a sandbox that dies (each is retried only once): 4 turned one killer run into three losses.
_PIPELINE_DEPTH = 2


class Executor:
    def __init__(self, pools: dict[str, Pool]) -> None:
        self.pools = pools

    async def run_batch(self, policy_name: str, specs: Sequence[RunSpec]) -> list[RunResult]:
        [results] = await self.run_stages(policy_name, [specs])
        return results

    async def run_stages(
        self, policy_name: str, stages: Sequence[Sequence[RunSpec]]
    ) -> list[list[RunResult]]:
        """Run each stage's specs on the same leased sandboxes, a stage only once the one before it has
        finished (every child reaped): ``/v1/azr/check`` evaluates expected outputs before any answer
        runs beside them (azr/check.py)."""
        pool = self.pools[policy_name]
        metrics = pool.metrics
        total = sum(len(specs) for specs in stages)
        metrics.batch_size.labels(policy=policy_name).observe(total)
        if not total:
            return [[] for _ in stages]
        batch = pool.policy.batch
        wanted = min(batch.max_containers, -(-total // batch.runs_per_container))  # ceil
        started = time.monotonic()
        sandboxes = await pool.lease(wanted)
        metrics.queue_wait.labels(policy=policy_name).observe(time.monotonic() - started)
        request_id = uuid.uuid4().hex[:12]
        compiler = Compiler(total)  # this request's texts, each compiled once (bytecode.py)
        finished: list[list[RunResult]] = []
        try:
            for number, specs in enumerate(stages):
                prefix = request_id if len(stages) == 1 else f"{request_id}-s{number}"
                results = await self._stage(pool, sandboxes, specs, prefix, compiler)
                finished.append(results)
        finally:
            for sandbox in sandboxes:
                pool.release(sandbox)
        for results in finished:
            for result in results:
                metrics.runs.labels(status=result.status.value, policy=policy_name).inc()
                metrics.run_duration.labels(policy=policy_name).observe(result.wall_time_seconds)
        return finished

    async def _stage(
        self,
        pool: Pool,
        sandboxes: list[Sandbox],
        specs: Sequence[RunSpec],
        request_id: str,
        compiler: Compiler,
    ) -> list[RunResult]:
        """Fan ``specs`` out over ``sandboxes`` (leasing fresh ones if every one dies) and wait for all."""
        results: list[RunResult | None] = [None] * len(specs)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(len(specs)):
            queue.put_nowait(index)
        retried: set[int] = set()
        workers = [  # slot by slot across the sandboxes, so that a short batch reaches all of them
            self._worker(pool, sandbox, specs, queue, results, request_id, retried, compiler)
            for _ in range(pool.policy.pool.max_parallel_runs * _PIPELINE_DEPTH)
            for sandbox in sandboxes
        ]
        await asyncio.gather(*workers)
        while not queue.empty():  # every leased sandbox died: finish on fresh ones
            spare = await pool.lease(1)
            sandboxes.extend(spare)
            await asyncio.gather(
                *(
                    self._worker(pool, spare[0], specs, queue, results, request_id, retried, compiler)
                    for _ in range(pool.policy.pool.max_parallel_runs * _PIPELINE_DEPTH)
                )
            )
        return [
            result or RunResult(status=Status.INTERNAL_ERROR, detail="run was never scheduled")
            for result in results
        ]

    async def _worker(  # noqa: PLR0917 - private helper, called from one place with positional context
        self,
        pool: Pool,
        sandbox: Sandbox,
        specs: Sequence[RunSpec],
        queue: asyncio.Queue[int],
        results: list[RunResult | None],
        request_id: str,
        retried: set[int],
        compiler: Compiler,
    ) -> None:
        while sandbox.alive:
            try:
                index = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            spec = specs[index]
            request = fork_request(spec, pool.policy, f"{request_id}-{index}", queue.qsize(), compiler)
            zygote = request.header.get("zygote")
            if zygote is not None:
                pool.note_zygote(str(zygote))
            timeout = spec.limits.wall_time_seconds * _PIPELINE_DEPTH + _RESULT_GRACE_SECONDS
            try:
                response = await sandbox.run(request.header, request.body, timeout)
            except SandboxDied as death:
                pool.metrics.sandbox_deaths.labels(policy=pool.name).inc()
                oom = death.exit_info is not None and death.exit_info.oom_killed
                if not oom and index not in retried:
                    # Killed from outside (engine restart, operator, crash): programs have no side
                    # effects, so the run is retried once on a fresh sandbox.
                    retried.add(index)
                    queue.put_nowait(index)
                    return
                results[index] = RunResult(
                    status=Status.MEMORY_LIMIT if oom else Status.INFRASTRUCTURE_ERROR,
                    sandbox_id=sandbox.id,
                    detail=str(death) if oom else f"{death}; the run was lost twice, retry it",
                )
                return
            except ZygoteDied as death:
                # The sandbox lives on and respawns the zygote: retry once, wherever a worker is free.
                if index not in retried:
                    retried.add(index)
                    queue.put_nowait(index)
                    continue
                results[index] = RunResult(
                    status=Status.INFRASTRUCTURE_ERROR,
                    sandbox_id=sandbox.id,
                    detail=f"{death}; the run was lost twice, retry it",
                )
                continue
            except SandboxFault as fault:
                log.error("run %s-%d: %s", request_id, index, fault)
                results[index] = RunResult(
                    status=Status.INTERNAL_ERROR, sandbox_id=sandbox.id, detail=str(fault)
                )
                await sandbox.destroy()
                return
            probes = len(spec.job.get("probes") or ())  # output-signature probes (docs/azr.md)
            results[index] = interpret(response, request.nonce, spec.limits, sandbox.id, probes=probes)
