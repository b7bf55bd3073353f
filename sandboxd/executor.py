"""Runs a request's programs on leased sandboxes, fanning a batch out over their children.

Pipeline for one request: lease sandboxes → feed runs (a :class:`RunFeed`, which may still be filling) to
``max_parallel_runs`` workers per sandbox → interpret each answer → release the sandboxes
(in ``finally``, so a cancelled request still gives its containers back).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence

from .bytecode import Compiler
from .exceptions import SandboxFault
from .metrics import publish_text_cache
from .pool import Pool
from .run import RunResult, RunSpec, fork_request, interpret
from .sandbox import Sandbox, SandboxDied, ZygoteDied
from .textcache import TextCache
from .verdict import Status

log = logging.getLogger(__name__)
_RESULT_GRACE_SECONDS = 10.0
# Runs in flight per child slot: the fork-server always has the next run queued when a child exits (and
# forks children for the queue in bursts, runner/forkserver.py Spare). Deeper queues lose more innocent
# runs with a sandbox that dies (each is retried only once): 4 turned one killer run into three losses.
_PIPELINE_DEPTH = 2


class RunFeed:
    """A stage's specs, possibly still arriving: its runs start while the rest are being planned.

    The AZR endpoints check each task's texts on the trusted side before its run exists (azr/); fed
    here one by one, the first runs go to the sandboxes while the last texts are still being checked,
    instead of the whole check waiting on one core. ``bound`` is the most specs the feed will get, for
    sizing the lease; ``close`` says no more will come. A plain sequence is a feed closed at once.
    """

    def __init__(
        self,
        bound: int,
        specs: Sequence[RunSpec] = (),
        on_result: Callable[[int, RunResult], None] | None = None,
    ) -> None:
        self.bound = bound
        self.specs: list[RunSpec] = list(specs)
        self.results: dict[int, RunResult] = {}
        self.on_result = on_result  # called with each spec's final result as it comes (azr/planning.py)
        self.on_delivered: Callable[[RunResult], None] | None = None  # each one first (Executor.run_stages)
        self.closed = False
        self._waiting: deque[int] = deque(range(len(self.specs)))
        # Workers waiting in ``next``, woken one per spec (a shared event would wake every idle worker
        # of the request for each spec planned); ``ready`` waits apart.
        self._idle: deque[asyncio.Future[None]] = deque()
        self._changed = asyncio.Event()

    @classmethod
    def of(cls, specs: Sequence[RunSpec] | RunFeed) -> RunFeed:
        if isinstance(specs, RunFeed):
            return specs
        feed = cls(len(specs), specs)
        feed.close()
        return feed

    def put(self, spec: RunSpec) -> None:
        if self.closed:
            raise RuntimeError("the feed is closed")
        self.specs.append(spec)
        self._waiting.append(len(self.specs) - 1)
        self._changed.set()
        self._wake_one()

    def close(self) -> None:
        self.closed = True
        self._changed.set()
        while self._idle:
            self._wake_one()

    def deliver(self, index: int, result: RunResult) -> None:
        """``index``'s final result (after any retry)."""
        self.results[index] = result
        if self.on_delivered is not None:
            self.on_delivered(result)
        if self.on_result is not None:
            self.on_result(index, result)

    def retry(self, index: int) -> None:
        """Run ``index`` again, before anything not yet started."""
        self._waiting.appendleft(index)
        self._changed.set()
        self._wake_one()

    def _wake_one(self) -> None:
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def ready(self) -> None:
        """Wait until the feed has a spec, or is closed."""
        while not self.specs and not self.closed:
            self._changed.clear()
            await self._changed.wait()

    @staticmethod
    async def any_specs(feeds: Sequence[RunFeed]) -> bool:
        """Whether any of ``feeds`` gets a spec: waits for the first that does, or for all to close empty."""
        for feed in feeds:
            await feed.ready()
            if feed.specs:
                return True
        return False

    @property
    def backlog(self) -> int:
        return len(self._waiting)

    @property
    def unfinished(self) -> bool:
        """Whether a spec is still to come or still waits for a worker."""
        return bool(self._waiting) or not self.closed

    async def next(self) -> int | None:
        """The next spec's index, once there is one; ``None`` once the feed is closed and drained."""
        while not self._waiting:
            if self.closed:
                return None
            waiter = asyncio.get_running_loop().create_future()
            self._idle.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken, then cancelled: pass the spec on
                raise
        return self._waiting.popleft()


class Executor:
    def __init__(self, pools: dict[str, Pool], texts: TextCache | None = None) -> None:
        self.pools = pools
        # compiled texts kept across requests (bytecode.Compiler); 0 bytes: keeps nothing
        self.texts = texts if texts is not None else TextCache(0)

    async def run_batch(self, policy_name: str, specs: Sequence[RunSpec]) -> list[RunResult]:
        [results] = await self.run_stages(policy_name, [specs])
        return results

    async def run_stages(
        self,
        policy_name: str,
        stages: Sequence[Sequence[RunSpec] | RunFeed],
        observe: Callable[[RunResult], None] | None = None,
    ) -> list[list[RunResult]]:
        """Run each stage's specs on the same leased sandboxes, a stage only once the one before it has
        finished (every child reaped): ``/v1/azr/check`` evaluates expected outputs before any answer
        runs beside them (azr/check.py). A stage may be a :class:`RunFeed` that is still filling.

        Each final result is counted in the metrics, and given to ``observe``, as its run ends: that
        work then overlaps the runs still going instead of holding up the response after the last one.
        """
        pool = self.pools[policy_name]
        metrics = pool.metrics
        runs, durations = metrics.runs, metrics.run_duration.labels(policy=policy_name)

        def ended(result: RunResult) -> None:
            runs.labels(status=result.status.value, policy=policy_name).inc()
            durations.observe(result.wall_time_seconds)
            if observe is not None:
                observe(result)

        feeds = [RunFeed.of(specs) for specs in stages]
        for feed in feeds:
            feed.on_delivered = ended  # set, not added: a feed handed in twice still counts each run once
        # Lease nothing for a request whose texts were all rejected before any run.
        if not await RunFeed.any_specs(feeds):
            metrics.batch_size.labels(policy=policy_name).observe(0)
            return [[] for _ in stages]
        bound = sum(len(feed.specs) if feed.closed else max(feed.bound, len(feed.specs)) for feed in feeds)
        batch = pool.policy.batch
        wanted = min(batch.max_containers, -(-bound // batch.runs_per_container))  # ceil
        started = time.monotonic()
        sandboxes = await pool.lease(wanted, runs_each=-(-bound // wanted))  # warm spares that fit
        metrics.queue_wait.labels(policy=policy_name).observe(time.monotonic() - started)
        request_id = uuid.uuid4().hex[:12]
        compiler = Compiler(bound, self.texts)  # each distinct text compiled once (bytecode.py)
        finished: list[list[RunResult]] = []
        try:
            for number, feed in enumerate(feeds):
                prefix = request_id if len(stages) == 1 else f"{request_id}-s{number}"
                results = await self._stage(pool, sandboxes, feed, prefix, compiler)
                finished.append(results)
        finally:
            for sandbox in sandboxes:
                pool.release(sandbox)
        metrics.batch_size.labels(policy=policy_name).observe(sum(len(results) for results in finished))
        publish_text_cache(metrics, self.texts)
        return finished

    async def _stage(
        self,
        pool: Pool,
        sandboxes: list[Sandbox],
        feed: RunFeed,
        request_id: str,
        compiler: Compiler,
    ) -> list[RunResult]:
        """Fan the feed's specs out over ``sandboxes`` (leasing fresh ones if every one dies) until it is
        closed and every run has its result."""
        retried: set[int] = set()
        workers = [  # slot by slot across the sandboxes, so that a short batch reaches all of them
            self._worker(pool, sandbox, feed, request_id, retried, compiler)
            for _ in range(pool.policy.pool.max_parallel_runs * _PIPELINE_DEPTH)
            for sandbox in sandboxes
        ]
        await asyncio.gather(*workers)
        while feed.unfinished:  # every leased sandbox died: finish on fresh ones
            spare = await pool.lease(1)
            sandboxes.extend(spare)
            await asyncio.gather(
                *(
                    self._worker(pool, spare[0], feed, request_id, retried, compiler)
                    for _ in range(pool.policy.pool.max_parallel_runs * _PIPELINE_DEPTH)
                )
            )
        for index in range(len(feed.specs)):
            if index not in feed.results:
                feed.deliver(index, RunResult(status=Status.INTERNAL_ERROR, detail="run was never scheduled"))
        return [feed.results[index] for index in range(len(feed.specs))]

    async def _worker(  # noqa: PLR0917 - private helper, called from one place with positional context
        self,
        pool: Pool,
        sandbox: Sandbox,
        feed: RunFeed,
        request_id: str,
        retried: set[int],
        compiler: Compiler,
    ) -> None:
        while sandbox.alive:
            index = await feed.next()
            if index is None:
                return
            if not sandbox.alive:  # died while this worker waited for the feed
                feed.retry(index)
                return
            spec = feed.specs[index]
            request = fork_request(spec, pool.policy, f"{request_id}-{index}", feed.backlog, compiler)
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
                    feed.retry(index)
                    return
                feed.deliver(
                    index,
                    RunResult(
                        status=Status.MEMORY_LIMIT if oom else Status.INFRASTRUCTURE_ERROR,
                        sandbox_id=sandbox.id,
                        detail=str(death) if oom else f"{death}; the run was lost twice, retry it",
                    ),
                )
                return
            except ZygoteDied as death:
                # The sandbox lives on and respawns the zygote: retry once, wherever a worker is free.
                if index not in retried:
                    retried.add(index)
                    feed.retry(index)
                    continue
                feed.deliver(
                    index,
                    RunResult(
                        status=Status.INFRASTRUCTURE_ERROR,
                        sandbox_id=sandbox.id,
                        detail=f"{death}; the run was lost twice, retry it",
                    ),
                )
                continue
            except SandboxFault as fault:
                log.error("run %s-%d: %s", request_id, index, fault)
                feed.deliver(
                    index, RunResult(status=Status.INTERNAL_ERROR, sandbox_id=sandbox.id, detail=str(fault))
                )
                await sandbox.destroy()
                return
            probes = len(spec.job.get("probes") or ())  # output-signature probes (docs/azr.md)
            feed.deliver(index, interpret(response, request.nonce, spec.limits, sandbox.id, probes=probes))
