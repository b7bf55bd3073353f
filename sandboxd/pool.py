"""The warm pool of one policy: started, configured sandboxes waiting for requests.

The pool keeps ``warm_containers`` sandboxes ready (plus one per waiting lease), starts at most
``max_starting`` at once, and backs off while the engine fails. Used sandboxes come back through
:meth:`Pool.release`: a policy that allows reuse puts them back, otherwise they are destroyed in
the background. A sandbox that dies while idle is dropped and replaced.

Starting and destroying containers is maintenance, and it waits for a quiet pool: while requests
hold sandboxes (or did less than ``QUIET_SECONDS`` ago), the pool tops up only to
``busy_warm_containers`` and keeps used sandboxes in ``retiring`` (at most ``MAX_RETIRING``); the rest
happens once it is quiet. A container's start and teardown cost the engine and the kernel about
0.3 core-seconds, which a running request would otherwise share its cores with (docs/design.md, "Pools").
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from .backends.base import Backend, SandboxSpec
from .exceptions import BackendUnavailable, PoolExhausted, SandboxdError, Unavailable
from .metrics import Metrics
from .policy import SandboxPolicy
from .sandbox import Sandbox, SandboxState

log = logging.getLogger(__name__)
_MAX_BACKOFF_SECONDS = 10.0
# The pool is quiet once nothing is leased and nothing was leased or released for this long. A used
# sandbox is destroyed then, not at its release: the release comes before the request's ledger entry
# and response, and a destroy right then (the engine's kill and teardown, the engine client's call in a
# thread of this process) slowed that response by about 7 ms, a third of a single run's latency under
# the default policy. A trainer's next request of a step (check after validate) comes sooner.
QUIET_SECONDS = 0.1
MAX_RETIRING = 8  # more used sandboxes than this waiting for quiet: the oldest is destroyed at once
# A zygote (runner/zygote.py) that runs needed this recently is started by new sandboxes at configure,
# in the warm pool, rather than by the first such run of a request: the heavy zygote's numpy import and
# warm-up take about 0.1 core-seconds, which the request would otherwise share its cores with.
PRESTARTABLE_ZYGOTES = ("heavy",)
ZYGOTE_DEMAND_SECONDS = 600.0
# Warm spares (policy pool.warm_spares): a sandbox that replaces one used by a request forks as many spares
# as that one ran, within the policy's cap, and a request leases the warm sandboxes whose spares best fit its
# runs per sandbox. A trainer's requests repeat their sizes step after step (an AZR step: validate 192 runs
# on one sandbox, check about 170 on each of two), so each finds a sandbox with the spares it needs, and
# few spares are forked for nothing.


class Pool:
    def __init__(
        self,
        policy: SandboxPolicy,
        *,
        backend: Backend,
        spec: SandboxSpec,
        configure: dict[str, Any],
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.backend = backend
        self.spec = spec
        self.configure_message = configure
        self.metrics = metrics
        self.clock = clock
        self.warm: collections.deque[Sandbox] = collections.deque()
        self.starting = 0
        self.leased: set[Sandbox] = set()
        self.retiring: dict[Sandbox, None] = {}  # released for good, destroyed once quiet; oldest first
        self.waiters = 0
        self.last_error: str | None = None
        self.outage: str | None = None  # set by the service while the engine cannot isolate
        self.ever_warm = False
        self.closed = False
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self._backoff = 0.0
        self._retry_at = 0.0
        self._last_activity = -QUIET_SECONDS  # the clock at the last lease or release
        self._maintenance: asyncio.TimerHandle | None = None
        self._zygote_demand: dict[str, float] = {}  # tag -> the clock when a run last needed it
        # What the latest retired sandboxes ran, newest last: a start takes the newest. A start while the pool is
        # busy may come before the retirement it replaces, so some are never taken: the oldest fall off.
        self._spare_demand: collections.deque[int] = collections.deque(
            maxlen=max(1, policy.pool.warm_containers)
        )

    # -- state ------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.policy.name

    @property
    def ready(self) -> bool:
        # Once warm, a pool stays ready while it can start sandboxes; being drained by load is not a fault.
        return bool(self.warm) or (
            self.last_error is None and (self.ever_warm or self.policy.pool.warm_containers == 0)
        )

    def _publish(self) -> None:
        counts = {state: 0 for state in SandboxState}
        counts[SandboxState.WARM] = len(self.warm)
        counts[SandboxState.STARTING] = self.starting
        counts[SandboxState.LEASED] = len(self.leased)
        counts[SandboxState.RETIRING] = len(self.retiring)
        for state, count in counts.items():
            self.metrics.pool_containers.labels(policy=self.name, state=state.value).set(count)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _quiet(self) -> bool:
        return not self.leased and self.clock() - self._last_activity >= QUIET_SECONDS

    def _maintain_later(self) -> None:
        if self._maintenance is None and not self.closed:
            self._maintenance = asyncio.get_running_loop().call_later(QUIET_SECONDS, self._maintain)

    def _maintain(self) -> None:
        """Once quiet: destroy the used sandboxes and start the deferred replacements."""
        self._maintenance = None
        if self.closed:
            return
        if not self._quiet():
            self._maintain_later()
            return
        while self.retiring:
            self._destroy_oldest_retired()
        self._refill()

    def _refill(self) -> None:
        """Start sandboxes until warm + starting covers the target, within max_starting."""
        if self.closed or self.clock() < self._retry_at:
            return
        self._drop_dead()
        # Leased sandboxes that will come back (reuse policies) count towards the target.
        returning = sum(1 for box in self.leased if self._reusable(box, extra_request=True))
        options = self.policy.pool
        target = options.warm_containers + self.waiters - returning
        if options.busy_warm_containers is not None and not self._quiet():
            busy_target = options.busy_warm_containers + self.waiters - returning
            if busy_target < target:
                target = busy_target
                self._maintain_later()  # the rest once quiet
        while self.starting < options.max_starting and len(self.warm) + self.starting < target:
            self.starting += 1
            self._spawn(self._start_one())
        self._publish()

    async def _start_one(self) -> None:
        sandbox: Sandbox | None = None
        started = self.clock()
        try:
            async with asyncio.timeout(self.policy.container.start_timeout_seconds):
                handle = await self.backend.create(self.spec)
            sandbox = Sandbox(handle, self.name)
            sandbox.on_death = self._on_death
            configured = await sandbox.configure(
                self._configure(), self.policy.container.start_timeout_seconds
            )
            forked = configured.get("warm_spares", 0)
            sandbox.spares = forked if type(forked) is int and forked > 0 else 0
        except asyncio.CancelledError:  # the pool is closing: never strand a started container or its socket
            if sandbox is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(sandbox.destroy())
            raise
        except (SandboxdError, TimeoutError, OSError) as exc:
            self.metrics.container_start_failures.labels(policy=self.name).inc()
            self.last_error = str(exc) or type(exc).__name__
            self._backoff = min(max(self._backoff * 2, 0.25), _MAX_BACKOFF_SECONDS)
            self._retry_at = self.clock() + self._backoff
            log.warning("pool %s: sandbox start failed (retry in %.2fs): %s", self.name, self._backoff, exc)
            if sandbox is not None:
                await sandbox.destroy()
            self._spawn(self._retry_later(self._backoff))
        else:
            self.metrics.container_start.labels(policy=self.name).observe(self.clock() - started)
            self.last_error = None
            if self.closed:
                await sandbox.destroy()
            else:
                sandbox.state = SandboxState.WARM
                self.warm.append(sandbox)
                self.ever_warm = True
            self._backoff = 0.0
        finally:
            self.starting -= 1
        async with self._changed:
            self._changed.notify_all()
        self._refill()

    async def _retry_later(self, delay: float) -> None:
        await asyncio.sleep(delay if not self.closed else 0)
        self._refill()

    def note_zygote(self, tag: str) -> None:
        """A run of this pool was sent to zygote ``tag``: new sandboxes start that zygote at configure."""
        if tag in PRESTARTABLE_ZYGOTES:
            self._zygote_demand[tag] = self.clock()

    def _configure(self) -> dict[str, Any]:
        """The configure message for a new sandbox, asking it to prestart the zygotes in recent demand
        and to fork its warm spares."""
        now = self.clock()
        extra: dict[str, Any] = {}
        wanted = [tag for tag, seen in self._zygote_demand.items() if now - seen < ZYGOTE_DEMAND_SECONDS]
        if wanted:
            extra["prestart"] = wanted
        spares = self._spare_demand.pop() if self._spare_demand else 0
        if spares:
            extra["spares"] = spares
        return {**self.configure_message, **extra} if extra else self.configure_message

    # -- leasing ----------------------------------------------------------------------------
    async def start(self) -> None:
        self._refill()

    async def set_outage(self, reason: str | None) -> None:
        """Fail waiting and new leases at once while the engine is down; retry starts when it is back."""
        if reason is None and self.outage is not None:
            self._backoff = self._retry_at = 0.0
        self.outage = reason
        if reason is not None:
            async with self._changed:
                self._changed.notify_all()

    def _check_open(self) -> None:
        if self.closed:
            raise Unavailable(f"pool {self.name} is shutting down")
        if self.outage is not None:
            raise BackendUnavailable(f"isolation unavailable: {self.outage}")

    async def lease(self, wanted: int, runs_each: int = 0) -> list[Sandbox]:
        """Wait for at least one warm sandbox, then take up to ``wanted`` of those warm now.

        ``runs_each``, the runs the request will give each sandbox, picks those whose warm spares fit it
        best (:meth:`_best_fit`); 0 takes them in order."""
        self._check_open()
        if not self.warm and self.waiters >= self.policy.pool.max_waiting_requests:
            # Bounded admission queue: refuse at once rather than pile up memory and latency.
            raise PoolExhausted(
                f"pool {self.name}: {self.waiters} requests already wait for a sandbox "
                f"(pool.max_waiting_requests={self.policy.pool.max_waiting_requests})"
            )
        deadline = self.policy.pool.admission_timeout_seconds
        self.waiters += 1
        try:
            async with asyncio.timeout(deadline):
                async with self._changed:
                    while True:
                        self._check_open()
                        self._drop_dead()
                        if self.warm:
                            break
                        self._refill()
                        await self._changed.wait()
        except TimeoutError as exc:
            reason = f"; last start failure: {self.last_error}" if self.last_error else ""
            raise PoolExhausted(f"no warm sandbox for policy {self.name} within {deadline}s{reason}") from exc
        finally:
            self.waiters -= 1
        taken: list[Sandbox] = []
        while self.warm and len(taken) < wanted:
            sandbox = self._best_fit(runs_each)
            self.warm.remove(sandbox)
            sandbox.state = SandboxState.LEASED
            sandbox.runs_at_lease = sandbox.runs_served
            self.leased.add(sandbox)
            taken.append(sandbox)
        self._last_activity = self.clock()
        self._refill()
        return taken

    def _best_fit(self, runs: int) -> Sandbox:
        """The warm sandbox with the fewest spares that cover ``runs``, else the one with the most; the
        first in order among equals (and the first of all when ``runs`` is 0 or no sandbox has spares)."""
        first = self.warm[0]
        if runs <= 0 or not any(box.spares for box in self.warm):
            return first
        covering = [box for box in self.warm if box.spares >= runs]
        if covering:
            return min(covering, key=lambda box: box.spares)
        return max(self.warm, key=lambda box: box.spares)

    def release(self, sandbox: Sandbox) -> None:
        """Return a sandbox after a request: keep it warm if the policy allows, else retire it."""
        self.leased.discard(sandbox)
        self._last_activity = self.clock()
        sandbox.requests_served += 1
        if self._reusable(sandbox) and len(self.warm) < max(1, self.policy.pool.warm_containers):
            sandbox.state = SandboxState.WARM
            self.warm.appendleft(sandbox)  # most recently used first: the others stay untouched
            self._spawn(self._notify())
        else:
            sandbox.state = SandboxState.RETIRING
            self.retiring[sandbox] = None
            ran = sandbox.runs_served - sandbox.runs_at_lease
            if ran > 0 and self.policy.warm_spares_cap > 0:  # its replacement forks as many spares
                self._spare_demand.append(min(ran, self.policy.warm_spares_cap))
            while len(self.retiring) > MAX_RETIRING:
                self._destroy_oldest_retired()
            self._maintain_later()
        self._refill()

    def _destroy_oldest_retired(self) -> None:
        sandbox = next(iter(self.retiring))
        del self.retiring[sandbox]
        self._spawn(sandbox.destroy())

    def _on_death(self, sandbox: Sandbox) -> None:
        """A sandbox's stream ended. Idle ones are dropped and replaced now; leased ones on release."""
        if sandbox in self.warm:
            self._drop_dead()
            self._refill()

    def _drop_dead(self) -> None:
        """Forget warm sandboxes that died while idle, releasing what is left of them."""
        dead = [box for box in self.warm if not box.alive]
        if dead:
            self.warm = collections.deque(box for box in self.warm if box.alive)
            for box in dead:
                self._spawn(box.destroy())

    def _reusable(self, sandbox: Sandbox, *, extra_request: bool = False) -> bool:
        pool = self.policy.pool
        return (
            not self.closed
            and sandbox.alive
            and sandbox.requests_served + extra_request < pool.max_requests_per_container
            and sandbox.runs_served < pool.max_runs_per_container
        )

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def close(self) -> None:
        self.closed = True
        if self._maintenance is not None:
            self._maintenance.cancel()
            self._maintenance = None
        async with self._changed:
            self._changed.notify_all()  # waiting leases fail now (shutting down)
        boxes = list(self.warm) + list(self.leased) + list(self.retiring)
        self.warm.clear()
        self.retiring.clear()
        await asyncio.gather(*(box.destroy() for box in boxes), return_exceptions=True)
        # Let in-flight starts and destroys finish (a started sandbox sees `closed` and destroys
        # itself); cancelling them could strand a container or an attach socket.
        pending = [task for task in self._tasks if not task.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=self.policy.container.start_timeout_seconds)
            for task in late:
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*late, return_exceptions=True)
        self._publish()
