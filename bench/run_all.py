"""Run every benchmark against one daemon and print a summary table with PASS/FAIL per target.

Order: throughput (AZR workload, batch endpoint against a pebble baseline), latency (default
policy open loop at 4 rps, pooled back to back), leaks (10,000 trivial runs). The daemon's peak
RSS is sampled over the whole run. Figures also go to ``bench/results/latest.json``.

This is a benchmark, not a test: it exits 0 whatever the figures, and non-zero only if the run
itself broke.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
import latency
import leaks
import throughput

RSS_TARGET_BYTES = 250 * 10**6
QUICK = {
    "passes": 1,
    "batch_sizes": [256],
    "default_requests": 40,
    "pooled_requests": 200,
    "leak_batches": 2,
}


def figures(results: dict[str, Any]) -> list[str]:
    """The headline numbers, one line each."""
    lines = []
    if "throughput" in results:
        tp = results["throughput"]
        base = tp["baseline"]
        lines.append(
            f"baseline (pebble, 1 worker)      {base['median']:8.1f} rows/s median, {base['best']:.1f} best"
        )
        for item in tp["sandboxed"]:
            lines.append(
                f"sandboxed batch {item['batch_size']:<5}            {item['median']:8.1f} rows/s median, "
                f"{item['best']:.1f} best -> {item['ratio_median']:.2f}x baseline"
            )
    if "latency" in results:
        for mode in results["latency"].values():
            client, server = mode["client"], mode["server_wall"]
            lines.append(
                f"{mode['mode']:<32} p50 {client['p50_ms']:6.1f} ms  p99 {client['p99_ms']:6.1f} ms  "
                f"(server wall p50 {server['p50_ms']:.2f} ms, p99 {server['p99_ms']:.2f} ms)"
            )
    if "leaks" in results:
        lk = results["leaks"]
        lines.append(
            f"leak check                       {lk['runs']} runs, {lk['final']['containers']} containers left "
            f"(bound {lk['container_bound']}), fds {lk['reference']['fds']}->{lk['final']['fds']}, "
            f"threads {lk['reference']['threads']}->{lk['final']['threads']}"
        )
    lines.append(f"daemon peak RSS                  {results['daemon_peak_rss_bytes'] / 1e6:8.1f} MB")
    return lines


def _wait_quiet(seconds: float) -> None:
    """Other work on the host skews every figure here; optionally wait for a quieter moment."""
    threshold = (os.cpu_count() or 1) / 4
    deadline = time.monotonic() + seconds
    while os.getloadavg()[0] > threshold and time.monotonic() < deadline:
        time.sleep(5)
    load = os.getloadavg()[0]
    if load > threshold:
        print(f"warning: host load average {load:.2f} on {os.cpu_count()} CPUs; figures will be skewed")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    throughput.add_arguments(parser)
    latency.add_arguments(parser)
    leaks.add_arguments(parser)
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["throughput", "latency", "leaks"], help="parts to leave out"
    )
    parser.add_argument("--quick", action="store_true", help=f"a smoke run with small counts: {QUICK}")
    parser.add_argument(
        "--json",
        default=str(common.RESULTS / "latest.json"),
        help="where to write the figures (default: %(default)s)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to SECONDS for the 1-minute load average to drop below 1 per 4 CPUs (default: no wait)",
    )
    args = parser.parse_args(argv)
    _wait_quiet(args.wait_quiet)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    parts = [
        (name, module)
        for name, module in (("throughput", throughput), ("latency", latency), ("leaks", leaks))
        if name not in args.skip
    ]
    started = time.monotonic()
    results: dict[str, Any] = {"machine": common.machine(), "arguments": vars(args)}
    rows: list[tuple[str, str, str, bool]] = []
    with common.running_daemon(tag="all") as daemon:
        results["instance"] = daemon.instance
        for name, module in parts:
            common.wait_quiet(daemon)  # each part starts with the pools full and nothing starting
            results[name] = module.measure(daemon, args)
            rows += module.targets(results[name])
        peak = daemon.rss.peak_bytes
    results["daemon_peak_rss_bytes"] = peak
    results["seconds"] = round(time.monotonic() - started, 1)
    results["load_average_after"] = os.getloadavg()
    rows.append(("daemon peak RSS", f"{peak / 1e6:.1f} MB", "<= 250 MB", peak <= RSS_TARGET_BYTES))
    if "throughput" in results:
        print("sanity (AZR recorded outputs, first pass of each path):")
        print("\n".join(throughput.sanity_lines(results["throughput"])))
    before, after = results["machine"]["load_average"][0], results["load_average_after"][0]
    print(
        f"\nsummary ({results['machine']['cpus']} CPUs, {results['machine']['date']}, {results['seconds']} s, "
        f"1-min load average {before:.2f} before, {after:.2f} after)"
    )
    for line in figures(results):
        print(f"  {line}")
    print("targets:")
    for row in rows:
        print(common.target_line(*row))
    results["targets"] = [{"name": n, "value": v, "target": t, "pass": ok} for n, v, t, ok in rows]
    common.write_json(Path(args.json), results)
    print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
