"""Batch throughput on the AZR validation workload: sandboxd's batch endpoint against AZR's executor.

Each row of ``7b_coder_seed_io.jsonl`` becomes one program: its imports, its snippet, then
``f(<input>)`` called twice in the same process, with the repr of the result and whether both
calls agreed written to stdout. The same programs go through two paths in one run:

* **sandboxed**: ``POST /v1/runs/batch`` of a separate ``sandboxd serve`` process (default policy:
  fresh containers per request, a freshly forked locked-down process per program), in batches of
  256 and 1024 runs;
* **baseline**: unsandboxed, the way AZR's executor works: a ``pebble.ProcessPool`` with one
  persistent worker, each program ``exec``'d in a fresh globals dict with a 10 s timeout per call.

Figures: rows/s per pass (median and best over ``--passes``), the sandboxed/baseline ratio, and
how many rows agreed with AZR's recorded output (a sanity check, not a speed figure). Daemon CPU
per run is reported too, to show where the time goes.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
from pebble import ProcessPool

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from sandboxd.policy import load_policies
from sandboxd.settings import BUILTIN_POLICIES

WARMUP_RUNS = 64


# -- baseline: AZR's executor shape -------------------------------------------------------------
def _execute(script: str) -> str:
    """Runs in the pebble worker: exec in a fresh globals dict, capture stdout."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(script, {})
    return buffer.getvalue()


def _tally(rows: Sequence[common.Row], stdouts: Sequence[str | None]) -> dict[str, Any]:
    """Sanity figures of one pass: rows that finished, were deterministic, matched AZR's record."""
    finished = deterministic = matched = 0
    mismatched: list[int] = []
    for row, stdout in zip(rows, stdouts, strict=True):
        parsed = common.parse_stdout(stdout) if stdout is not None else None
        if parsed is None:
            mismatched.append(row.index)
            continue
        finished += 1
        same, actual = parsed
        deterministic += same
        if common.matches_recorded(actual, row.output):
            matched += 1
        else:
            mismatched.append(row.index)
    return {
        "rows": len(rows),
        "finished": finished,
        "deterministic": deterministic,
        "matched_recorded": matched,
        "unmatched_rows": mismatched,
    }


class Baseline:
    """AZR's executor shape: one persistent pebble worker, a fresh globals dict and a timeout per call."""

    def __init__(self, rows: Sequence[common.Row], timeout: float) -> None:
        self.rows = rows
        self.timeout = timeout
        # The unsandboxed worker runs model code: at least keep its files out of the checkout.
        self.pool = ProcessPool(max_workers=1, initializer=os.chdir, initargs=(tempfile.mkdtemp(),))
        self.pool.schedule(_execute, args=("pass",)).result()  # start the persistent worker first
        self.rates: list[float] = []
        self.errors: collections.Counter[str] = collections.Counter()
        self.sanity: dict[str, Any] = {}

    def one_pass(self) -> float:
        started = time.perf_counter()
        futures = [
            self.pool.schedule(_execute, args=(row.script,), timeout=self.timeout) for row in self.rows
        ]
        stdouts: list[str | None] = []
        for future in futures:
            try:
                stdouts.append(future.result())
            except concurrent.futures.TimeoutError:
                self.errors["timeout"] += 1
                stdouts.append(None)
            except Exception as exc:  # a program's exception is an outcome here
                self.errors[type(exc).__name__] += 1
                stdouts.append(None)
        rate = len(self.rows) / (time.perf_counter() - started)
        if not self.rates:
            self.sanity = _tally(self.rows, stdouts)
        self.rates.append(rate)
        return rate

    def close(self) -> None:
        self.pool.close()
        self.pool.join(timeout=30)

    def summary(self) -> dict[str, Any]:
        return {
            "rows_per_second": self.rates,
            "median": statistics.median(self.rates),
            "best": max(self.rates),
            "errors_per_pass": {key: value / len(self.rates) for key, value in self.errors.items()},
            "sanity": self.sanity,
        }


# -- sandboxed: POST /v1/runs/batch --------------------------------------------------------------
def _stream(rows: Sequence[common.Row], size: int) -> list[common.Row]:
    """``size`` rows, cycling through the workload (1024 = the 256 rows four times)."""
    return [rows[i % len(rows)] for i in range(size)]


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


class Sandboxed:
    """Batches of ``batch_size`` runs through ``POST /v1/runs/batch``, with CPU accounting per pass."""

    HEADERS = {"content-type": "application/json"}  # noqa: RUF012 - read-only constant

    def __init__(
        self, daemon: common.Daemon, rows: Sequence[common.Row], batch_size: int, policy: str
    ) -> None:
        self.daemon = daemon
        self.rows = rows
        self.batch_size = batch_size
        self.policy = policy
        self.batch = _stream(rows, batch_size)
        fan_out = load_policies(BUILTIN_POLICIES)[policy].batch.max_containers
        self.warm = {policy: min(fan_out, batch_size)}
        self.body = json.dumps(
            {"policy": policy, "runs": [{"code": row.script} for row in self.batch]}
        ).encode()
        self.client = daemon.client()
        self.daemon_process = psutil.Process(daemon.pid)
        self.me = psutil.Process()
        self.rates: list[float] = []
        self.daemon_cpu_ms: list[float] = []
        self.client_cpu_ms: list[float] = []
        self.child_cpu_ms: list[float] = []
        self.statuses: collections.Counter[str] = collections.Counter()
        self.containers: list[int] = []
        self.sanity: dict[str, Any] = {}
        self.profile: dict[str, float] = {}

    def _post(self) -> list[dict[str, Any]]:
        response = self.client.post("/v1/runs/batch", content=self.body, headers=self.HEADERS)
        response.raise_for_status()
        results: list[dict[str, Any]] = response.json()["results"]
        return results

    def warm_up(self) -> None:
        runs = [{"code": row.script} for row in self.rows[:WARMUP_RUNS]]
        body = json.dumps({"policy": self.policy, "runs": runs}).encode()
        self.client.post("/v1/runs/batch", content=body, headers=self.HEADERS).raise_for_status()

    def one_pass(self) -> float:
        common.wait_ready(self.daemon, warm=self.warm)  # the last request's containers are being replaced
        daemon_cpu, my_cpu = _cpu(self.daemon_process), _cpu(self.me)
        started = time.perf_counter()
        results = self._post()
        elapsed = time.perf_counter() - started
        size = self.batch_size
        self.daemon_cpu_ms.append(1000 * (_cpu(self.daemon_process) - daemon_cpu) / size)
        self.client_cpu_ms.append(1000 * (_cpu(self.me) - my_cpu) / size)
        self.child_cpu_ms.append(1000 * sum(r["cpu_time_seconds"] for r in results) / size)
        self.statuses.update(r["status"] for r in results)
        self.containers.append(len({r["sandbox_id"] for r in results}))
        if not self.rates:
            n = len(self.rows)
            self.sanity = _tally(self.batch[:n], [r["stdout"] for r in results[:n]])
        self.rates.append(size / elapsed)
        return self.rates[-1]

    def profiled_pass(self) -> None:
        """One more, untimed pass with the host CPU profiler on."""
        common.wait_ready(self.daemon, warm=self.warm)
        profile = common.CpuProfile(self.daemon)
        with profile:
            self._post()
        self.profile = {group: 1000 * sec / self.batch_size for group, sec in profile.breakdown().items()}

    def summary(self, baseline: Sequence[float]) -> dict[str, Any]:
        ratios = [mine / theirs for mine, theirs in zip(self.rates, baseline, strict=False)]
        return {
            "batch_size": self.batch_size,
            "policy": self.policy,
            "rows_per_second": self.rates,
            "median": statistics.median(self.rates),
            "best": max(self.rates),
            "ratio_median": statistics.median(self.rates) / statistics.median(baseline),
            "ratio_best": max(self.rates) / max(baseline),
            "ratio_per_pass": ratios,
            "statuses": dict(self.statuses),
            "containers_per_batch": self.containers,
            "daemon_cpu_ms_per_run": statistics.median(self.daemon_cpu_ms),
            "client_cpu_ms_per_run": statistics.median(self.client_cpu_ms),
            "child_cpu_ms_per_run": statistics.median(self.child_cpu_ms),
            "cpu_ms_per_run_profiled": self.profile,
            "sanity": self.sanity,
        }


# -- the whole measurement -----------------------------------------------------------------------
def measure(daemon: common.Daemon, args: argparse.Namespace) -> dict[str, Any]:
    """Interleaved passes (baseline, then each batch size), so load drift on the host hits both paths."""
    rows, rejected = common.load_workload(Path(args.workload))
    print(
        f"throughput: {len(rows)} rows ({rejected} rejected by the single-call check), "
        f"{args.passes} interleaved passes, batch sizes {args.batch_sizes}, policy {args.policy}"
    )
    baseline = Baseline(rows, args.timeout)
    sandboxed = [Sandboxed(daemon, rows, size, args.policy) for size in args.batch_sizes]
    try:
        for path in sandboxed:
            path.warm_up()
        for number in range(args.passes):
            line = f"  pass {number}: baseline {baseline.one_pass():7.1f} rows/s"
            for path in sandboxed:
                line += f" | batch {path.batch_size} {path.one_pass():6.1f} rows/s"
            print(line)
        for path in sandboxed:
            path.profiled_pass()
    finally:
        baseline.close()
        for path in sandboxed:
            path.client.close()
    base = baseline.summary()
    print(f"  baseline (pebble, 1 worker): median {base['median']:.1f} rows/s, best {base['best']:.1f}")
    results = [path.summary(baseline.rates) for path in sandboxed]
    for result in results:
        print(
            f"  sandboxed batch={result['batch_size']:<5} median {result['median']:.1f} rows/s, "
            f"best {result['best']:.1f}, ratio {result['ratio_median']:.3f}x "
            f"(per pass {', '.join(f'{r:.3f}' for r in result['ratio_per_pass'])}); "
            f"daemon CPU {result['daemon_cpu_ms_per_run']:.2f} ms/run, "
            f"child CPU {result['child_cpu_ms_per_run']:.2f} ms/run, statuses {result['statuses']}, "
            f"containers per batch {sorted(set(result['containers_per_batch']))}"
        )
        profile = ", ".join(f"{k} {v:.2f}" for k, v in result["cpu_ms_per_run_profiled"].items())
        print(f"    host CPU ms per run (one extra profiled batch): {profile}")
    return {
        "rows": len(rows),
        "rejected": rejected,
        "passes": args.passes,
        "baseline": base,
        "sandboxed": results,
    }


def targets(result: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(name, value, target, ok) rows for the summary."""
    out = []
    for item in result["sandboxed"]:
        ratio = item["ratio_median"]
        goal = " (goal 0.3x met)" if ratio >= 0.3 else " (goal 0.3x missed)"
        out.append(
            (
                f"batch {item['batch_size']} throughput vs baseline",
                f"{ratio:.2f}x",
                ">= 0.2x" + goal,
                ratio >= 0.2,
            )
        )
    return out


def sanity_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    paths = [("baseline", result["baseline"]["sanity"])]
    paths += [(f"sandboxed b{item['batch_size']}", item["sanity"]) for item in result["sandboxed"]]
    for name, tally in paths:
        lines.append(
            f"  {name:<16} finished {tally['finished']}/{tally['rows']}, deterministic "
            f"{tally['deterministic']}, matched recorded output {tally['matched_recorded']}/{tally['rows']}"
            f" (unmatched rows: {tally['unmatched_rows'][:12]}{' ...' if len(tally['unmatched_rows']) > 12 else ''})"
        )
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workload", default=str(common.WORKLOAD), help="AZR jsonl file (default: %(default)s)"
    )
    parser.add_argument(
        "--passes", type=int, default=4, help="passes per path and batch size (default: %(default)s)"
    )
    parser.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=[256, 1024],
        help="sandboxed batch sizes (default: %(default)s)",
    )
    parser.add_argument("--policy", default="default", help="policy of the batches (default: %(default)s)")
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="baseline per-call timeout, s (default: %(default)s)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    with common.running_daemon(tag="tp") as daemon:
        result = measure(daemon, args)
        result["daemon_peak_rss_bytes"] = daemon.rss.peak_bytes
    print("sanity (first pass of each path):")
    print("\n".join(sanity_lines(result)))
    print("targets:")
    for row in targets(result):
        print(common.target_line(*row))
    if args.json:
        common.write_json(Path(args.json), {"machine": common.machine(), "throughput": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
