"""The service: policies, backend, pools and executor, with a start-up and shutdown order.

``Service`` holds no HTTP concerns; the API layer calls it. Start-up: load policies → check the
engine can isolate (fail closed) → remove orphans of a crashed predecessor → warm the pools.
Shutdown reverses it and removes every container this instance started.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .backends import load_backend
from .backends.base import Backend, SandboxSpec
from .exceptions import BackendUnavailable, SandboxdError, Unavailable, UnknownPolicy
from .executor import Executor, RunFeed
from .ledger.config import LedgerConfig
from .ledger.entry import Kind
from .ledger.recorder import Recorder
from .metrics import Metrics
from .policy import SandboxPolicy, load_policies
from .pool import Pool
from .reviews.desk import ReviewDesk
from .run import RunResult, RunSpec
from .seccomp import container_profile
from .settings import Settings
from .textcache import TextCache
from .verdict import Status
from .watchdog.checker import check_source
from .watchdog.criteria import Pack
from .watchdog.decision import Decision, DecisionKind
from .watchdog.outcome import outcome_of
from .watchdog.postexec import check_outcome, has_post_checks
from .watchdog.rules import Role
from .watchdog.sentinel import Sentinel
from .watchdog.wiring import select_packs

log = logging.getLogger(__name__)
MANAGED_LABEL = "sandboxd.managed"
INSTANCE_LABEL = "sandboxd.instance"
_FAST_CHECK_SECONDS = 1.0  # probe period while isolation is down or a pool cannot start sandboxes


def image_for(policy: SandboxPolicy, settings: Settings) -> str:
    if policy.container.image:
        return policy.container.image
    if settings.image:
        return settings.image
    from .image import runner_image_tag  # noqa: PLC0415 - hashing the runner is only needed here

    return runner_image_tag()


def sandbox_spec(policy: SandboxPolicy, settings: Settings) -> SandboxSpec:
    container = policy.container
    return SandboxSpec(
        image=image_for(policy, settings),
        runtime=container.runtime,
        memory_bytes=container.memory_bytes,
        cpus=container.cpus,
        pids_limit=container.pids_limit,
        scratch_bytes=container.scratch_bytes,
        scratch_inodes=container.scratch_inodes,
        user=container.user,
        seccomp_profile=container_profile(policy),
        env={
            "PYTHONHASHSEED": str(settings.hash_seed),
            "PYTHONPATH": "/opt/sandboxd",
            "PYTHONDONTWRITEBYTECODE": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "LANG": "C.UTF-8",
            "HOME": "/scratch",
            # The interpreter binds its libc calls lazily, on first call, and a call the fork-server
            # never made is looked up again (and its GOT page copied) in every child. Bound at start
            # instead: 8-17 fewer page faults per child of an AZR step (docs/design.md).
            "LD_BIND_NOW": "1",
        },
        labels={MANAGED_LABEL: "1", INSTANCE_LABEL: settings.instance, "sandboxd.policy": policy.name},
    )


def configure_message(policy: SandboxPolicy) -> dict[str, Any]:
    return {
        "syscalls": list(policy.syscalls),
        "preload": list(policy.preload_modules),
        "heavy_modules": list(policy.heavy_modules),
        "max_parallel": policy.pool.max_parallel_runs,
        "scratch_root": "/scratch",
        "scheduling": policy.container.scheduling,
        "spare_pages": policy.pool.spare_pages if policy.warm_spares_cap else 0,
    }


def load_watchdog_packs(
    policies: dict[str, SandboxPolicy], policies_dir: Path
) -> dict[str, tuple[Pack, ...]]:
    """The packs of every policy that enables the watchdog, each directory and selection loaded once."""
    loaded: dict[tuple[Path | None, tuple[str, ...]], tuple[Pack, ...]] = {}
    chosen: dict[str, tuple[Pack, ...]] = {}
    for policy in policies.values():
        options = policy.watchdog
        if not options.enabled:
            continue
        folder = options.packs_dir
        if folder is not None and not folder.is_absolute():
            folder = policies_dir / folder
        key = (folder, options.packs)
        if key not in loaded:
            loaded[key] = select_packs(folder, options.packs, f"policy {policy.name}")
        chosen[policy.name] = loaded[key]
    return chosen


class Service:
    def __init__(
        self, settings: Settings, backend: Backend | None = None, metrics: Metrics | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.ledger = Recorder(LedgerConfig.from_settings(settings), self.metrics)
        self.policies: dict[str, SandboxPolicy] = load_policies(settings.policies_dir)
        if settings.default_policy not in self.policies:
            raise SandboxdError(
                f"default policy {settings.default_policy!r} is not in {settings.policies_dir}"
            )
        self.watchdog_packs = load_watchdog_packs(self.policies, settings.policies_dir)
        self.sentinel = Sentinel.from_settings(settings, self.metrics, self.record_event)  # docs/safety.md
        self.reviews = ReviewDesk(
            self.ledger.config.url, self.ledger, self.sentinel.observe_label
        )  # docs/reviews.md
        self.backend = backend or load_backend(settings)
        self.pools: dict[str, Pool] = {}
        # Text checks, literal-or-not and bytecode, kept across requests (textcache.py)
        self.texts = TextCache(settings.text_cache_bytes)
        self.executor = Executor(self.pools, self.texts)
        self.unavailable: str | None = "starting"
        self.draining = False  # SIGTERM: no new work is admitted (sandboxd.api.drain)
        self._watch: asyncio.Task[None] | None = None
        self._probe: asyncio.Future[None] | None = None
        self._swept = False  # orphans of a crashed predecessor removed

    @property
    def labels(self) -> dict[str, str]:
        return {MANAGED_LABEL: "1", INSTANCE_LABEL: self.settings.instance}

    async def start(self) -> None:
        await self.ledger.start()
        for policy in self.policies.values():
            log.info("effective policy %s: %s", policy.name, policy.model_dump_json())
            self.pools[policy.name] = Pool(
                policy,
                backend=self.backend,
                spec=self.sentinel.plant(sandbox_spec(policy, self.settings)),
                configure=configure_message(policy),
                metrics=self.metrics,
            )
        await self.check()
        if self.unavailable is None:
            await self._sweep_orphans()
            if self.settings.warm_pools:
                for pool in self.pools.values():
                    await pool.start()
        self._watch = asyncio.create_task(self._watch_engine())
        await self.sentinel.start()

    async def _sweep_orphans(self) -> None:
        """Remove the containers a crashed predecessor of this instance left; once, when the engine answers."""
        try:
            removed = await asyncio.wait_for(
                self.backend.remove_labelled(self.labels), self.settings.engine_call_timeout_seconds
            )
        except (SandboxdError, TimeoutError) as exc:
            log.warning("could not remove orphaned containers yet: %s", exc)
            return
        self._swept = True
        if removed:
            log.warning(
                "removed %d orphaned sandbox containers of instance %s", removed, self.settings.instance
            )

    async def check(self) -> None:
        """Fail closed: record why isolation is unavailable, or clear the reason.

        Bounded by ``engine_probe_timeout_seconds``: a hung engine is an unavailable one. A probe
        still stuck in the engine is awaited again rather than piled up behind.
        """
        images = {pool.spec.image for pool in self.pools.values()}
        runtimes = {pool.spec.runtime for pool in self.pools.values()}
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(self.backend.check(images, runtimes))
            self._probe.add_done_callback(lambda done: done.cancelled() or done.exception())
        timeout = self.settings.engine_probe_timeout_seconds
        reason: str | None = None
        try:
            await asyncio.wait_for(asyncio.shield(self._probe), timeout)
        except TimeoutError:
            reason = f"docker engine unresponsive: no answer within {timeout:g}s"
        except Unavailable as exc:
            reason = str(exc)
        if reason is not None:
            if self.unavailable != reason:
                log.error("refusing to run code: %s", reason)
            self.unavailable = reason
        else:
            if self.unavailable is not None and self.unavailable != "starting":
                log.info("isolation available again")
            self.unavailable = None
        for pool in self.pools.values():
            await pool.set_outage(self.unavailable)

    async def _watch_engine(self) -> None:
        """Probe the engine every ``engine_check_interval_seconds``, every second while something is
        wrong; restart the pools when isolation comes back."""
        last = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(min(_FAST_CHECK_SECONDS, self.settings.engine_check_interval_seconds))
            troubled = self.unavailable is not None or any(p.last_error for p in self.pools.values())
            now = asyncio.get_running_loop().time()
            if not troubled and now - last < self.settings.engine_check_interval_seconds:
                continue
            last = now
            was = self.unavailable
            await self.check()
            if was is not None and self.unavailable is None:
                if not self._swept:  # the engine was down at startup
                    await self._sweep_orphans()
                if self.settings.warm_pools:
                    for pool in self.pools.values():
                        await pool.start()

    def policy(self, name: str | None) -> SandboxPolicy:
        chosen = name or self.settings.default_policy
        try:
            return self.policies[chosen]
        except KeyError:
            raise UnknownPolicy(f"unknown policy {chosen!r}; loaded: {sorted(self.policies)}") from None

    def screen(
        self, policy: SandboxPolicy, source: str, role: Role, task_type: str | None = None
    ) -> Decision | None:
        """The static watchdog's decision on ``source`` (DESIGN.md §4 step 3); None when it is off."""
        packs = self.watchdog_packs.get(policy.name)
        if packs is None:
            return None
        decision = check_source(source, packs, role, task_type)
        self.sentinel.observe_decision(decision)
        self._count(decision)
        return decision

    def _count(self, decision: Decision) -> None:
        """One ``watchdog_decisions`` increment per distinct rule that fired, or one for rule ``none``."""
        for rule in sorted({finding.rule_id for finding in decision.findings}) or ["none"]:
            self.metrics.watchdog_decisions.labels(decision=decision.decision.value, rule=rule).inc()

    def after_run(self, policy: SandboxPolicy, found: Decision | None) -> None:
        """Count a post-execution or semantic decision (DESIGN.md §4 step 6) that has findings.

        A clean one is not counted (the static decision already counted the item); a veto also feeds the
        alignment-confidence window, as a static veto does.
        """
        if found is None or not found.findings:
            return
        if found.decision is DecisionKind.VETO:
            self.sentinel.observe_decision(found)
        self._count(found)

    def screen_outcome(
        self, policy: SandboxPolicy, result: RunResult, role: Role, task_type: str | None, source: str
    ) -> Decision | None:
        """The post-execution checks' decision on a finished run; None when the watchdog is off."""
        packs = self.watchdog_packs.get(policy.name)
        if packs is None or not has_post_checks(packs):
            return None
        found = check_outcome(outcome_of(result), packs, role, task_type, source)
        self.after_run(policy, found)
        return found

    async def record_event(self, kind: str, body: Mapping[str, Any]) -> None:
        """Append an operational event (a ``sandboxd.ledger.entry.Kind`` value) to the ledger, durably.

        The hook through which tripwires, throttle changes, policy changes and admin actions reach
        the ledger. Raises ``LedgerUnavailable`` (HTTP 503) when it cannot be recorded, and
        ``ValueError`` for an unknown kind or a body that is not JSON.
        """
        log.info("event %s: %s", kind, dict(body))
        await self.ledger.append([(Kind(kind), dict(body))])

    def readiness(self) -> dict[str, Any]:
        pools = {
            name: {
                "warm": len(pool.warm),
                "starting": pool.starting,
                "target": pool.policy.pool.warm_containers,
                "warm_spares": [box.spares for box in pool.warm],
                "ready": pool.ready,
                "last_error": pool.last_error,
            }
            for name, pool in self.pools.items()
        }
        reason = "shutting down" if self.draining else self.unavailable or self.ledger.problem
        ready = reason is None and all(p["ready"] for p in pools.values())
        return {"ready": ready, "reason": reason, "pools": pools}

    async def run(self, policy: SandboxPolicy, specs: Sequence[RunSpec] | RunFeed) -> list[RunResult]:
        [results] = await self.run_stages(policy, [specs])
        return results

    async def run_stages(
        self, policy: SandboxPolicy, stages: Sequence[Sequence[RunSpec] | RunFeed]
    ) -> list[list[RunResult]]:
        """``run`` for stages that share their sandboxes, each after the one before (Executor.run_stages)."""
        feeds = [RunFeed.of(stage) for stage in stages]
        if not await RunFeed.any_specs(feeds):  # every text was rejected on the trusted side
            return [[] for _ in feeds]
        if self.unavailable is not None:
            raise Unavailable(f"isolation unavailable: {self.unavailable}")
        leaked: list[tuple[RunResult, list[str]]] = []

        def observe(result: RunResult) -> None:  # as each run ends: honeytokens, violation rate
            rules = self.sentinel.scan_run(result)
            if rules:
                leaked.append((result, rules))

        try:
            finished = await self.executor.run_stages(policy.name, feeds, observe)
        except BackendUnavailable:
            await self._fail_if_engine_gone()
            raise
        if any(result.status is Status.INFRASTRUCTURE_ERROR for stage in finished for result in stage):
            await self._fail_if_engine_gone()  # runs lost twice
        await self.sentinel.fire_leaks(policy.name, leaked)
        return finished

    async def _fail_if_engine_gone(self) -> None:
        """Runs lost mid-flight may be the engine going away: probe it, and if it is gone, say so (the
        same reason /readyz and new requests give) rather than how the runs were lost."""
        await self.check()
        if self.unavailable is not None:
            raise BackendUnavailable(f"isolation unavailable: {self.unavailable}")

    async def close_pools(self) -> None:
        """Destroy every sandbox, bounded in time; runs still in flight end with 503 (shutting down)."""
        closing = asyncio.gather(*(pool.close() for pool in self.pools.values()), return_exceptions=True)
        try:
            await asyncio.wait_for(closing, self.settings.engine_call_timeout_seconds)
        except TimeoutError:
            log.warning("pools did not close in time; leftovers are removed at the next start")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        await self.sentinel.stop()
        await self.close_pools()
        try:
            await asyncio.wait_for(
                self.backend.remove_labelled(self.labels), self.settings.engine_call_timeout_seconds
            )
        except (SandboxdError, TimeoutError) as exc:
            log.warning("could not sweep containers at shutdown (removed at the next start): %s", exc)
        await self.backend.aclose()
        await self.reviews.stop()
        await self.ledger.stop()
