"""The watchdog's cost (issue 4, item 9): static-check time per program, and batch throughput with it on.

1. **Static checks**: ``check_source`` with the default packs on every program of ``tests/data`` (AZR seed
   and CRUXEval rows, 1,824 programs), for both roles, a few rounds; median and p99 per program.
   Target: median <= 1 ms.
2. **Throughput**: one ``sandboxd serve`` with two policies that differ only in ``watchdog.enabled``:
   ``bench-plain`` and ``bench-watchdog`` (default packs: static checks before and post-execution checks
   after each run). The AZR rows go through ``POST /v1/runs/batch`` to each policy in interleaved passes,
   so drift in the host's load hits both. Target: the watchdog costs <= 15% of throughput.

The induction hard-coding detector is not on this path (it runs for ``/v1/azr/check`` answers with a
reference program, and costs two extra sandboxed runs per such answer); its cost is not measured here.
The rows are run as ``imports + snippet + f(input) twice + print``: the execution-core benchmark's own
script ends with ``__import__('sys')``, which the capability pack would veto on every row.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from sandboxd.policy import load_policies
from sandboxd.settings import BUILTIN_POLICIES
from sandboxd.watchdog.checker import check_source
from sandboxd.watchdog.packs import default_packs

DATA = common.ROOT / "tests" / "data"
STATIC_TARGET_MS = 1.0
THROUGHPUT_TARGET = 0.15


def programs() -> list[str]:
    """Every program of tests/data: AZR seed snippets (with their imports) and CRUXEval code."""
    out: list[str] = []
    for path in sorted((DATA / "azr").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            out.append("\n".join([*common.parse_imports(row.get("imports", [])), row["snippet"]]))
    for line in (DATA / "cruxeval" / "cruxeval.jsonl").read_text(encoding="utf-8").splitlines():
        out.append(json.loads(line)["code"])
    return out


def static_figures(rounds: int) -> dict[str, Any]:
    packs = default_packs()
    sources = programs()
    for source in sources[:50]:  # warm imports and caches
        check_source(source, packs, "solver")
    figures: dict[str, Any] = {"programs": len(sources), "rounds": rounds}
    for role in ("proposer", "solver"):
        times: list[float] = []
        decisions: Counter[str] = Counter()
        for _ in range(rounds):
            for source in sources:
                started = time.perf_counter()
                decision = check_source(source, packs, role, "induction" if role == "solver" else None)
                times.append(1000 * (time.perf_counter() - started))
                decisions[decision.decision.value] += 1
        times.sort()
        figures[role] = {
            "median_ms": statistics.median(times),
            "p99_ms": times[int(0.99 * (len(times) - 1))],
            "max_ms": times[-1],
            "decisions_per_round": {k: v // rounds for k, v in decisions.items()},
        }
        print(
            f"static {role:<8}: median {figures[role]['median_ms']:.3f} ms, p99 {figures[role]['p99_ms']:.3f} ms,"
            f" max {figures[role]['max_ms']:.2f} ms per program over {len(sources)} programs x {rounds}"
            f" (decisions per round {figures[role]['decisions_per_round']})"
        )
    return figures


def bench_policies(directory: Path) -> Path:
    """The built-in policies plus two that differ only in ``watchdog.enabled``."""
    for source in BUILTIN_POLICIES.glob("*.yaml"):
        (directory / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    for name, enabled in (("bench-plain", "false"), ("bench-watchdog", "true")):
        (directory / f"{name}.yaml").write_text(
            f"schema_version: 1\nkind: sandbox\nname: {name}\nextends: default\n"
            f"description: benchmark policy, watchdog {enabled}\nwatchdog:\n  enabled: {enabled}\n",
            encoding="utf-8",
        )
    return directory


def script(row: common.Row) -> str:
    return (
        "\n".join(row.imports)
        + f"\n{row.snippet}\n__bench_a = f({row.input})\n__bench_b = f({row.input})\n"
        + "print(repr(__bench_a) == repr(__bench_b))\n"
    )


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    rows, _ = common.load_workload(Path(args.workload))
    batch = [script(rows[i % len(rows)]) for i in range(args.batch_size)]
    arms = ("bench-plain", "bench-watchdog")
    rates: dict[str, list[float]] = {name: [] for name in arms}
    daemon_ms: dict[str, list[float]] = {name: [] for name in arms}  # the daemon's CPU per run
    child_ms: dict[str, list[float]] = {name: [] for name in arms}  # the runs' own CPU per run
    statuses: dict[str, Counter[str]] = {name: Counter() for name in arms}
    decisions: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="sandboxd-bench-wd-") as folder:
        policies = bench_policies(Path(folder))
        fan_out = {name: p.batch.max_containers for name, p in load_policies(policies).items()}
        os.environ["SANDBOXD_POLICIES_DIR"] = str(policies)  # read by the daemon's settings
        with common.running_daemon(tag="wd") as daemon, daemon.client() as client:
            process = psutil.Process(daemon.pid)
            for name in arms:  # warm-up, untimed
                body = {"policy": name, "runs": [{"code": code} for code in batch[:64]]}
                client.post("/v1/runs/batch", json=body, timeout=600).raise_for_status()
            for number in range(args.passes):
                line = f"  pass {number}:"
                for name in arms if number % 2 == 0 else tuple(reversed(arms)):
                    common.wait_ready(daemon, warm={name: min(fan_out[name], args.batch_size)})
                    body = {"policy": name, "runs": [{"code": code} for code in batch]}
                    cpu, started = _cpu(process), time.perf_counter()
                    response = client.post("/v1/runs/batch", json=body, timeout=600)
                    elapsed = time.perf_counter() - started
                    response.raise_for_status()
                    results = response.json()["results"]
                    rates[name].append(len(batch) / elapsed)
                    daemon_ms[name].append(1000 * (_cpu(process) - cpu) / len(batch))
                    child_ms[name].append(1000 * sum(r["cpu_time_seconds"] for r in results) / len(batch))
                    statuses[name].update(r["status"] for r in results)
                    if name == "bench-watchdog":
                        decisions.update(r["watchdog"]["decision"] for r in results)
                    line += (
                        f" {name} {rates[name][-1]:6.1f} runs/s ({daemon_ms[name][-1]:.2f} ms daemon CPU/run)"
                    )
                print(line)
    plain, guarded = statistics.median(rates["bench-plain"]), statistics.median(rates["bench-watchdog"])
    cost = 1 - guarded / plain
    print(
        f"throughput batch={args.batch_size}: without watchdog {plain:.1f} runs/s, with {guarded:.1f} runs/s "
        f"(median of {args.passes}); ratio {guarded / plain:.3f}, cost {100 * cost:.1f}%"
    )
    # CPU accounting is steadier than wall time on a loaded host: the watchdog's extra daemon CPU per run,
    # against what one run costs without it (daemon + the run's own CPU; container and engine overhead are
    # left out, which overstates the share).
    d_plain = statistics.median(daemon_ms["bench-plain"])
    d_guarded = statistics.median(daemon_ms["bench-watchdog"])
    c_plain = statistics.median(child_ms["bench-plain"])
    cpu_cost = (d_guarded - d_plain) / (d_plain + c_plain)
    print(
        f"  daemon CPU per run {d_plain:.2f} ms without, {d_guarded:.2f} ms with; the run's own CPU "
        f"{c_plain:.2f} ms; the watchdog's share of a run's CPU {100 * cpu_cost:.1f}%"
    )
    print(
        f"  statuses {dict(statuses['bench-plain'])} / {dict(statuses['bench-watchdog'])}; decisions {dict(decisions)}"
    )
    return {
        "batch_size": args.batch_size,
        "passes": args.passes,
        "rows_per_second": rates,
        "median_plain": plain,
        "median_watchdog": guarded,
        "ratio": guarded / plain,
        "cost": cost,
        "daemon_cpu_ms_per_run": {k: statistics.median(v) for k, v in daemon_ms.items()},
        "child_cpu_ms_per_run": {k: statistics.median(v) for k, v in child_ms.items()},
        "cpu_cost": cpu_cost,
        "statuses": {k: dict(v) for k, v in statuses.items()},
        "watchdog_decisions": dict(decisions),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workload", default=str(common.WORKLOAD), help="AZR jsonl file (default: %(default)s)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="static-check rounds (default: %(default)s)")
    parser.add_argument(
        "--passes", type=int, default=4, help="throughput passes per arm (default: %(default)s)"
    )
    parser.add_argument("--batch-size", type=int, default=256, help="runs per batch (default: %(default)s)")
    parser.add_argument("--static-only", action="store_true", help="skip the throughput part (no Docker)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    print(f"machine: {common.machine()} (shared and loaded: figures vary between runs)")
    result: dict[str, Any] = {"static": static_figures(args.rounds)}
    if not args.static_only:
        result["throughput"] = throughput(args)
    print("targets:")
    median = max(result["static"][role]["median_ms"] for role in ("proposer", "solver"))
    print(
        common.target_line(
            "static check median per program", f"{median:.3f} ms", "<= 1 ms", median <= STATIC_TARGET_MS
        )
    )
    if "throughput" in result:
        cost = result["throughput"]["cost"]
        share = result["throughput"]["cpu_cost"]
        rows = [("watchdog throughput cost (wall)", cost), ("watchdog share of run CPU", share)]
        for name, value in rows:
            print(common.target_line(name, f"{100 * value:.1f}%", "<= 15%", value <= THROUGHPUT_TARGET))
    if args.json:
        common.write_json(Path(args.json), {"machine": common.machine(), "watchdog": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
