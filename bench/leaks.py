"""Leak check: 10,000 trivial runs (10 batches of 1000, alternating default and pooled), then settle.

Before the counted batches, one warm-up batch per policy brings the daemon to steady state (the
Docker thread pool, the HTTP connection, the pooled pool's leased containers coming back). After
a short settle, these must hold:

* **containers**: ``docker ps -a --filter label=sandboxd.instance=<instance>`` counts exactly the
  sandboxes the daemon reports warm in ``/readyz`` (none leased, retiring or unknown to it), and no
  more than the pools' warm size (plus, for a policy that reuses containers, the ones a batch
  leased, which come back warm instead of being retired);
* **processes**: the daemon has no child processes, and its threads and open fds are no more than
  at the reference point (+2);
* **shims**: every live container of the instance has its ``containerd-shim``, and no container
  the instance ever had (ids from ``docker events``) still has one once it is removed. Other users
  run containers on the same host, so host-wide shim counts are printed but not judged.

Every figure is printed, per batch too, so that slow growth is visible.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from sandboxd.policy import load_policies
from sandboxd.settings import BUILTIN_POLICIES

PROGRAM = "print(1)"
TOLERANCE = 2  # threads/fds above the reference that still count as stable


def _snapshot(daemon: common.Daemon, ever: set[str]) -> dict[str, Any]:
    state = daemon.readiness()
    snap: dict[str, Any] = daemon.snapshot()
    snap["containers"] = common.instance_containers(daemon.instance)
    snap["warm"] = {name: pool["warm"] for name, pool in state["pools"].items()}
    snap.update(common.shim_figures(daemon.instance, ever))
    return snap


def _settle(daemon: common.Daemon, ever: set[str], seconds: float) -> dict[str, Any]:
    """Wait until every container of the instance is a warm pool member, or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while True:
        snap = _snapshot(daemon, ever)
        if snap["containers"] == sum(snap["warm"].values()) or time.monotonic() > deadline:
            time.sleep(1.0)  # let the last removals finish and fds close
            return _snapshot(daemon, ever)
        time.sleep(0.25)


def _batch(client: Any, policy: str, size: int) -> collections.Counter[str]:
    body = json.dumps({"policy": policy, "runs": [{"code": PROGRAM}] * size}).encode()
    response = client.post("/v1/runs/batch", content=body, headers={"content-type": "application/json"})
    response.raise_for_status()
    return collections.Counter(result["status"] for result in response.json()["results"])


def _bound(policies: Sequence[str]) -> tuple[int, int]:
    """(sum of configured warm sizes, the most a settled daemon may keep) over ``policies``."""
    loaded = load_policies(BUILTIN_POLICIES)
    warm = sum(loaded[name].pool.warm_containers for name in policies)
    extra = sum(loaded[name].batch.max_containers for name in policies if loaded[name].reuses_containers)
    return warm, warm + extra


def measure(daemon: common.Daemon, args: argparse.Namespace) -> dict[str, Any]:
    policies = ["default", "pooled"]
    print(
        f"leaks: {args.leak_batches} batches of {args.leak_batch_size} trivial runs, alternating {policies}"
    )
    ever = set(common.docker_ids(f"label=sandboxd.instance={daemon.instance}"))
    with daemon.client() as client, common.ContainerEvents(daemon.instance) as events:
        for policy in policies:  # warm-up, not counted
            _batch(client, policy, args.leak_batch_size)
        reference = _settle(daemon, ever | events.created, args.settle)
        created_before = len(events.created)
        statuses: collections.Counter[str] = collections.Counter()
        series = []
        for number in range(args.leak_batches):
            policy = policies[number % 2]
            started = time.perf_counter()
            statuses.update(_batch(client, policy, args.leak_batch_size))
            elapsed = time.perf_counter() - started
            snap = daemon.snapshot()
            snap["containers"] = common.instance_containers(daemon.instance)
            series.append(
                {"batch": number, "policy": policy, "runs_per_second": args.leak_batch_size / elapsed, **snap}
            )
            print(
                f"  batch {number:2} {policy:<8} {args.leak_batch_size / elapsed:6.0f} runs/s  containers {snap['containers']:2}"
                f"  threads {snap['threads']:3}  fds {snap['fds']:3}  children {snap['children']}"
                f"  rss {snap['rss_bytes'] / 2**20:.1f} MiB"
            )
        final = _settle(daemon, ever | events.created, args.settle)
    created = len(events.created) - created_before
    configured, bound = _bound(policies)
    checks = {
        "containers_all_warm": final["containers"] == sum(final["warm"].values()),
        "containers_within_pool_size": final["containers"] <= bound,
        "no_daemon_children": final["children"] == 0,
        "threads_stable": final["threads"] <= reference["threads"] + TOLERANCE,
        "fds_stable": final["fds"] <= reference["fds"] + TOLERANCE,
        "instance_shims_match": final["instance_shims"] == final["containers"],
        "no_stray_shims": final["stray_shims"] == 0,
        "all_runs_ok": set(statuses) == {"ok"},
    }
    for name, when in (("reference", reference), ("final", final)):
        print(
            f"  {name:<9} containers {when['containers']} (daemon says warm {when['warm']}; configured warm "
            f"{configured}, bound {bound})  children {when['children']}  threads {when['threads']}  "
            f"fds {when['fds']}  shims: live {when['instance_shims']}, stray {when['stray_shims']} "
            f"(host-wide orphans, any user: {when['orphan_shims']})"
        )
    print(f"  runs: {sum(statuses.values())} {dict(statuses)}; containers created meanwhile: {created}")
    print(f"  checks: {checks}")
    return {
        "runs": sum(statuses.values()),
        "statuses": dict(statuses),
        "containers_created": created,
        "containers_seen": len(ever | events.created),
        "configured_warm": configured,
        "container_bound": bound,
        "reference": reference,
        "final": final,
        "series": series,
        "checks": checks,
    }


def targets(result: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    checks = result["checks"]
    final, reference = result["final"], result["reference"]
    containers_ok = checks["containers_all_warm"] and checks["containers_within_pool_size"]
    processes_ok = checks["no_daemon_children"] and checks["threads_stable"] and checks["fds_stable"]
    return [
        (
            f"leaked containers after {result['runs']} runs",
            f"{final['containers'] - sum(final['warm'].values())}",
            f"0 (left {final['containers']}, bound {result['container_bound']})",
            containers_ok,
        ),
        (
            "leaked processes/threads/fds",
            f"{final['children']}/{final['threads'] - reference['threads']:+d}/{final['fds'] - reference['fds']:+d}",
            f"0/<=+{TOLERANCE}/<=+{TOLERANCE}",
            processes_ok,
        ),
        (
            "stray containerd-shims",
            f"{final['stray_shims']}",
            f"0 (of {result['containers_seen']} containers)",
            checks["no_stray_shims"] and checks["instance_shims_match"],
        ),
        (
            "leak-run statuses all ok",
            f"{result['statuses'].get('ok', 0)}/{result['runs']}",
            "all ok",
            checks["all_runs_ok"],
        ),
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--leak-batches", type=int, default=10, help="counted batches (default: %(default)s)")
    parser.add_argument(
        "--leak-batch-size", type=int, default=1000, help="runs per batch (default: %(default)s)"
    )
    parser.add_argument(
        "--settle", type=float, default=30.0, help="max seconds to settle (default: %(default)s)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    with common.running_daemon(tag="leak") as daemon:
        result = measure(daemon, args)
        peak = daemon.rss.peak_bytes
    print(f"  daemon peak RSS {peak / 2**20:.1f} MiB")
    print("targets:")
    for row in targets(result):
        print(common.target_line(*row))
    if args.json:
        common.write_json(
            Path(args.json), {"machine": common.machine(), "leaks": result, "daemon_peak_rss_bytes": peak}
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
