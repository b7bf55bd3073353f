"""Reloading sandbox policies, watchdog packs and the safety file at run time, atomically.

Everything is loaded and validated first; any error leaves the running configuration untouched. Then,
in one step without an ``await``, the service's policies, packs and safety configuration are swapped.
A policy whose definition changed gets a fresh pool; its old pool is closed once its leases are back.
The throttle's band and window survive a reload (a reload never lifts a pause).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .exceptions import ConfigurationError
from .policy import SandboxPolicy, load_policies
from .pool import Pool
from .service import Service, configure_message, load_watchdog_packs, sandbox_spec
from .watchdog.criteria import Pack
from .watchdog.diff import diff_packs, loosening
from .watchdog.safety import SafetyConfig, resolve
from .watchdog.tripwires import TripwireRegistry

log = logging.getLogger(__name__)
_RETIRE_WAIT_SECONDS = 300.0


def _sha(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _pack_digest(pack: Pack) -> str:
    try:
        return hashlib.sha256(Path(pack.path).read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def digest(
    policies: dict[str, SandboxPolicy], packs: dict[str, tuple[Pack, ...]], safety: SafetyConfig
) -> dict[str, Any]:
    """Digests of each policy, each policy's packs and the safety file, and one over all of them."""
    parts = {
        "policies": {name: _sha(p.model_dump(mode="json")) for name, p in sorted(policies.items())},
        "packs": {name: {p.name: _pack_digest(p) for p in chosen} for name, chosen in sorted(packs.items())},
        "safety": _sha(safety.model_dump(mode="json")),
    }
    return {"all": _sha(parts), **parts}


def summary(
    old: dict[str, Any],
    new: dict[str, Any],
    old_packs: dict[str, tuple[Pack, ...]],
    new_packs: dict[str, tuple[Pack, ...]],
) -> dict[str, Any]:
    """What changed, with every loosening watchdog change spelled out (``sandboxd policy diff``)."""
    before, after = old["policies"], new["policies"]
    loosened = sorted(
        {
            f"{name}: {change}"
            for name in sorted(set(old_packs) | set(new_packs))
            for change in loosening(diff_packs(old_packs.get(name, ()), new_packs.get(name, ())))
        }
    )
    return {
        "policies_added": sorted(set(after) - set(before)),
        "policies_removed": sorted(set(before) - set(after)),
        "policies_changed": sorted(n for n in set(before) & set(after) if before[n] != after[n]),
        "packs_changed": sorted(
            n for n in set(old["packs"]) | set(new["packs"]) if old["packs"].get(n) != new["packs"].get(n)
        ),
        "safety_changed": old["safety"] != new["safety"],
        "loosening": loosened,
    }


@dataclass(frozen=True)
class Plan:
    """A validated configuration, not yet applied."""

    policies: dict[str, SandboxPolicy]
    packs: dict[str, tuple[Pack, ...]]
    safety: SafetyConfig
    safety_path: Path | None
    tripwires: TripwireRegistry | None
    report: dict[str, Any]  # old_digest, new_digest, changes


class Reloader:
    """One per app; ``lock`` serialises reloads; keeps the tasks that retire replaced pools."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()

    def current(self) -> dict[str, Any]:
        s = self.service
        return digest(s.policies, s.watchdog_packs, s.sentinel.config)

    def prepare(self) -> Plan:
        """Load and validate everything; raise :class:`ConfigurationError` if anything is invalid."""
        s, settings = self.service, self.service.settings
        policies = load_policies(settings.policies_dir)
        if settings.default_policy not in policies:
            raise ConfigurationError(f"default policy {settings.default_policy!r} would be gone")
        packs = load_watchdog_packs(policies, settings.policies_dir)
        safety, path = resolve(settings.safety_file, settings.policies_dir)
        tripwires = s.sentinel.check_reconfigure(safety, path)
        old, new = self.current(), digest(policies, packs, safety)
        report = {
            "old_digest": old["all"],
            "new_digest": new["all"],
            "changes": summary(old, new, s.watchdog_packs, packs),
        }
        return Plan(policies, packs, safety, path, tripwires, report)

    async def apply(self, plan: Plan) -> None:
        """Swap in ``plan`` (hold ``lock`` from ``prepare`` to here)."""
        s, settings = self.service, self.service.settings
        fresh = {
            name: Pool(
                policy,
                backend=s.backend,
                spec=s.sentinel.plant(sandbox_spec(policy, settings)),
                configure=configure_message(policy),
                metrics=s.metrics,
            )
            for name, policy in plan.policies.items()
            if name not in s.pools or s.policies.get(name) != policy
        }
        # The swap: no await from here to the end of the loop.
        s.policies, s.watchdog_packs = plan.policies, plan.packs
        s.sentinel.reconfigure(plan.safety, plan.safety_path, plan.tripwires)
        gone = [name for name in s.pools if name in fresh or name not in plan.policies]
        replaced = [s.pools.pop(name) for name in gone]
        s.pools.update(fresh)
        for pool in replaced:
            task = asyncio.create_task(self._retire(pool))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        if s.unavailable is None and settings.warm_pools:
            for pool in fresh.values():
                await pool.start()
        log.warning("policies reloaded: %s", plan.report["changes"])

    async def _retire(self, pool: Pool) -> None:
        """Close a replaced pool once the requests that leased from it are done (bounded)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _RETIRE_WAIT_SECONDS
        while pool.leased and loop.time() < deadline:
            await asyncio.sleep(0.2)
        await pool.close()
