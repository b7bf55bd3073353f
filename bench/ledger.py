"""The curriculum ledger's costs (issue 5, item 8), against its goals.

1. **Appends** on SQLite (WAL, ``synchronous=FULL``): ``append_many`` in batches (one transaction and one
   fsync each), with a signed checkpoint every 1,000 entries as the daemon makes them. Goal >= 20,000/s.
2. **Verify**: ``sandboxd ledger verify --key ...`` (the CLI, end to end) over a 1,000,000-entry ledger with
   a checkpoint every 1,000 entries. Goal < 30 s.
3. **Scorecard**: ``sandboxd scorecard`` (the CLI, verification included) over 100,000 entries, each a
   ``task_proposed`` entry of a *distinct* program (the worst case for featurization). Goal < 60 s.
4. **Throughput cost** in the execution-core batch benchmark: the AZR rows through ``POST /v1/runs/batch``
   (default policy) to two daemons side by side, in interleaved passes: one with its ordinary SQLite ledger
   (a ``verdict`` entry per run, durable before the answer), one started through ``bench/_ledgerless.py``,
   whose recorder stores nothing (bench only; the service has no such switch). Goal <= 10%.

Synthetic ledgers are made from the real programs of tests/data (``_synthetic.py``). Every part repeats
(``--reps``, default 3) and reports the median; the load average is printed before and after each part,
because the host is shared. Ledgers are built in a temporary directory, or kept in ``--keep DIR`` and
reused by later runs (building the 1,000,000-entry ledger takes a minute or two).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
import _synthetic as synthetic

from sandboxd.ledger.note import Signer
from sandboxd.ledger.recorder import COMPACT_ENTRIES
from sandboxd.ledger.sqlite import SqliteLedgerStore
from sandboxd.ledger.store import Item

ORIGIN = "bench/ledger"
CHECKPOINT_EVERY = 1000
APPEND_GOAL = 20_000.0
VERIFY_GOAL_SECONDS = 30.0
SCORECARD_GOAL_SECONDS = 60.0
THROUGHPUT_GOAL = 0.10
ON, OFF = "ledger on", "ledger off (no-op recorder)"
LEDGERLESS = (sys.executable, str(Path(__file__).resolve().parent / "_ledgerless.py"))


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def build(path: Path, items: Iterator[Item], count: int, batch: int) -> tuple[float, float]:
    """Append ``count`` items to a new ledger at ``path`` in batches, checkpointing every 1,000 and folding
    the write-ahead log every ``COMPACT_ENTRIES``, as the daemon does.

    Returns entries per wall second and per CPU second of this process (the fsync waits are not CPU). The
    items are generated outside the clocks, a batch at a time.
    """
    signer = Signer.from_file(ORIGIN, path.with_suffix(".key"))
    store = SqliteLedgerStore(path, origin=ORIGIN, signer=signer)
    spent = cpu = 0.0
    done = since_checkpoint = since_compaction = 0
    try:
        while done < count:
            chunk = [item for _, item in zip(range(min(batch, count - done)), items, strict=False)]
            started, used = time.perf_counter(), time.process_time()
            store.append_many(chunk)
            since_checkpoint += len(chunk)
            if since_checkpoint >= CHECKPOINT_EVERY:
                store.checkpoint()
                since_checkpoint = 0
            since_compaction += len(chunk)
            if since_compaction >= COMPACT_ENTRIES:  # as the daemon's recorder does (the store leaves it)
                store.compact_log()
                since_compaction = 0
            spent += time.perf_counter() - started
            cpu += time.process_time() - used
            done += len(chunk)
        store.checkpoint()
    finally:
        store.close()
    return count / spent, count / cpu


def appends(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    print(f"appends ({load()})")
    out: dict[str, Any] = {"entries": args.append_entries, "by_batch": {}}
    for batch in args.append_batches:
        rates, cpu_rates = [], []
        for rep in range(args.reps):
            path = folder / f"append-{batch}-{rep}.db"
            rate, cpu_rate = build(
                path, synthetic.curriculum(args.append_entries), args.append_entries, batch
            )
            rates.append(rate)
            cpu_rates.append(cpu_rate)
            for leftover in (
                path,
                f"{path}-wal",
                f"{path}-shm",
                path.with_suffix(".key"),
                path.with_suffix(".key.pub"),
            ):
                Path(leftover).unlink(missing_ok=True)
        median = statistics.median(rates)
        out["by_batch"][batch] = {"rates": rates, "median": median, "per_cpu_second": cpu_rates}
        print(
            f"  batch {batch:>5}: {median:9.0f} entries/s median ({', '.join(f'{r:.0f}' for r in rates)});"
            f" {statistics.median(cpu_rates):.0f} entries per CPU second"
        )
    print(f"  ({load()})")
    return out


def ledger(folder: Path, name: str, items: Iterator[Item], count: int) -> Path:
    """The ledger ``name`` of ``count`` entries in ``folder``, built unless it is there already."""
    path = folder / f"{name}.db"
    if not (path.exists() and path.with_suffix(".key.pub").exists()):
        path.unlink(missing_ok=True)
        print(f"  building {path} ({count} entries) ...", flush=True)
        rate, _ = build(path, items, count, 1000)
        print(f"  built at {rate:.0f} entries/s")
    return path


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Wall seconds, CPU seconds (the command and its worker processes) and the finished process."""
    cpu, started = _children_cpu(), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=3600)
    return time.perf_counter() - started, _children_cpu() - cpu, done


def verify_figures(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    print(f"verify ({load()})")
    path = ledger(
        folder,
        f"verify-{args.verify_entries}",
        synthetic.curriculum(args.verify_entries),
        args.verify_entries,
    )
    key = path.with_suffix(".key.pub")
    command = [str(common.SANDBOXD), "ledger", "verify", "--db", str(path), "--key", str(key)]
    seconds, cpu = [], []
    for _ in range(args.reps):
        elapsed, used, done = timed(command)
        if done.returncode != 0:
            raise RuntimeError(f"verify failed: {done.stdout}{done.stderr}")
        seconds.append(elapsed)
        cpu.append(used)
        print(f"  {elapsed:6.1f} s wall, {used:6.1f} s CPU: {done.stdout.strip()} ({load()})", flush=True)
    median = statistics.median(seconds)
    print(f"  median {median:.1f} s wall, {statistics.median(cpu):.1f} s CPU over {args.reps}")
    return {"entries": args.verify_entries, "seconds": seconds, "cpu_seconds": cpu, "median": median}


def scorecard_figures(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    print(f"scorecard ({load()})")
    count = args.scorecard_entries
    path = ledger(folder, f"scorecard-{count}", synthetic.proposals(count), count)
    seconds, cpu = [], []
    for _ in range(args.reps):
        with tempfile.TemporaryDirectory(prefix="sandboxd-bench-card-") as out:
            command = [str(common.SANDBOXD), "scorecard", "--ledger", str(path), "--out", out]
            elapsed, used, done = timed(command)
        if done.returncode != 0:
            raise RuntimeError(f"scorecard failed: {done.stdout}{done.stderr}")
        seconds.append(elapsed)
        cpu.append(used)
        last = done.stderr.strip().splitlines()[-1]
        print(f"  {elapsed:6.1f} s wall, {used:6.1f} s CPU: {last} ({load()})", flush=True)
    median = statistics.median(seconds)
    print(f"  median {median:.1f} s wall, {statistics.median(cpu):.1f} s CPU over {args.reps}")
    return {
        "entries": count,
        "distinct_programs": count,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "median": median,
    }


def throughput(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Ledger on and off side by side: two daemons, interleaved passes of the same batch."""
    print(f"throughput ({load()})")
    rows, _ = common.load_workload(Path(args.workload))
    batch = [rows[i % len(rows)].script for i in range(args.batch_size)]
    arms = {ON: (str(common.SANDBOXD),), OFF: LEDGERLESS}
    rates: dict[str, list[float]] = {name: [] for name in arms}
    daemon_ms: dict[str, list[float]] = {name: [] for name in arms}  # the daemon's CPU per run
    child_ms: dict[str, list[float]] = {name: [] for name in arms}  # the runs' own CPU per run
    os.environ["SANDBOXD_WORKERS"] = "1"
    os.environ["SANDBOXD_DATA_DIR"] = str(folder / "on-data")  # a fresh ledger, never the checkout's var/
    with common.running_daemon(tag="ledger-on", launcher=arms[ON]) as on:
        os.environ["SANDBOXD_DATA_DIR"] = str(folder / "off-data")
        with common.running_daemon(tag="ledger-off", launcher=arms[OFF]) as off:
            daemons = {ON: on, OFF: off}
            clients = {name: d.client() for name, d in daemons.items()}
            body = {"runs": [{"code": code} for code in batch]}
            for client in clients.values():  # warm-up, untimed
                client.post("/v1/runs/batch", json={"runs": body["runs"][:64]}).raise_for_status()
            for number in range(args.passes):
                order = list(arms) if number % 2 == 0 else list(reversed(arms))
                line = f"  pass {number}:"
                for name in order:
                    common.wait_ready(daemons[name], warm={"default": 2})
                    process = psutil.Process(daemons[name].pid)
                    cpu, started = _cpu(process), time.perf_counter()
                    response = clients[name].post("/v1/runs/batch", json=body)
                    elapsed = time.perf_counter() - started
                    response.raise_for_status()
                    rates[name].append(len(batch) / elapsed)
                    daemon_ms[name].append(1000 * (_cpu(process) - cpu) / len(batch))
                    results = response.json()["results"]
                    child_ms[name].append(1000 * sum(r["cpu_time_seconds"] for r in results) / len(batch))
                    line += f" {name} {rates[name][-1]:6.1f} runs/s ({daemon_ms[name][-1]:.2f} ms daemon CPU/run);"
                print(line, f"({load()})", flush=True)
            entries = on.metric("sandboxd_ledger_entries_total", kind="verdict")
            for client in clients.values():
                client.close()
    on_rate, off_rate = statistics.median(rates[ON]), statistics.median(rates[OFF])
    cost = 1 - on_rate / off_rate
    print(
        f"  batch {args.batch_size}: ledger off {off_rate:.1f} runs/s, on {on_rate:.1f} runs/s (median of "
        f"{args.passes}); cost {100 * cost:.1f}%; {entries:.0f} verdict entries recorded"
    )
    # As in bench/watchdog.py: CPU accounting is steadier than wall time on a loaded host. The ledger's extra
    # daemon CPU per run, against what a run costs without it (daemon + the run's own CPU; container and
    # engine overhead are left out, which overstates the share).
    d_on, d_off = statistics.median(daemon_ms[ON]), statistics.median(daemon_ms[OFF])
    c_off = statistics.median(child_ms[OFF])
    cpu_cost = (d_on - d_off) / (d_off + c_off)
    print(
        f"  daemon CPU per run {d_off:.3f} ms without, {d_on:.3f} ms with; the run's own CPU {c_off:.2f} ms;"
        f" the ledger's share of a run's CPU {100 * cpu_cost:.1f}%"
    )
    return {"batch_size": args.batch_size, "passes": args.passes, "rates": rates, "cost": cost,
            "median_on": on_rate, "median_off": off_rate, "verdict_entries": entries,
            "daemon_cpu_ms_per_run": {k: statistics.median(v) for k, v in daemon_ms.items()},
            "child_cpu_ms_per_run": {k: statistics.median(v) for k, v in child_ms.items()},
            "cpu_cost": cpu_cost}  # fmt: skip


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", nargs="+", default=["appends", "verify", "scorecard", "throughput"],
                        choices=["appends", "verify", "scorecard", "throughput"])  # fmt: skip
    parser.add_argument("--reps", type=int, default=3, help="repetitions per figure (default: %(default)s)")
    parser.add_argument("--append-entries", type=int, default=100_000)
    parser.add_argument("--append-batches", type=int, nargs="+", default=[64, 1000])
    parser.add_argument("--verify-entries", type=int, default=1_000_000)
    parser.add_argument("--scorecard-entries", type=int, default=100_000)
    parser.add_argument(
        "--passes", type=int, default=6, help="throughput passes per arm (default: %(default)s)"
    )
    parser.add_argument("--batch-size", type=int, default=1024, help="runs per batch (default: %(default)s)")
    parser.add_argument("--workload", default=str(common.WORKLOAD), help="AZR jsonl (default: %(default)s)")
    parser.add_argument("--keep", type=Path, help="build and reuse the ledgers in this directory")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    print(f"machine: {common.machine()} (shared and loaded: figures vary between runs)")
    parts = {
        "appends": appends,
        "verify": verify_figures,
        "scorecard": scorecard_figures,
        "throughput": throughput,
    }
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sandboxd-bench-ledger-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for name in args.parts:
            result[name] = parts[name](args, folder)
    print("targets:")
    if "appends" in result:
        best = max(v["median"] for v in result["appends"]["by_batch"].values())
        print(
            common.target_line("SQLite appends, batched", f"{best:.0f}/s", ">= 20,000/s", best >= APPEND_GOAL)
        )
    if "verify" in result:
        s = result["verify"]["median"]
        name = f"verify {result['verify']['entries']:,} entries"
        print(common.target_line(name, f"{s:.1f} s", "< 30 s", s < VERIFY_GOAL_SECONDS))
    if "scorecard" in result:
        s = result["scorecard"]["median"]
        name = f"scorecard {result['scorecard']['entries']:,} entries"
        print(common.target_line(name, f"{s:.1f} s", "< 60 s", s < SCORECARD_GOAL_SECONDS))
    if "throughput" in result:
        for name, key in (("ledger throughput cost (wall)", "cost"), ("ledger share of run CPU", "cpu_cost")):
            c = result["throughput"][key]
            print(common.target_line(name, f"{100 * c:.1f}%", "<= 10%", c <= THROUGHPUT_GOAL))
    if args.json:
        common.write_json(Path(args.json), {"machine": common.machine(), "ledger": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
