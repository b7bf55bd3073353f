"""The floor of one fresh process per program: what a forked child costs in the runner image, with no
fork-server, no protocol and no lock-down, next to the unsandboxed baseline measured in the same run.

A probe runs as the only process of a container started with the daemon's settings (as
``bench/forkserver.py`` starts one). It imports the policy's preload modules, freezes the heap like
the fork-server, then forks children one at a time and reads their CPU and minor page faults from
``getrusage(RUSAGE_CHILDREN)``, and its own from ``RUSAGE_SELF``:

* *exit*: the child calls ``os._exit(0)`` at once (``fork`` and exit alone);
* *compile*: the child only compiles a workload row's script (next line), without running it;
* *script*: the child runs the whole AZR validation script of a workload row (``f(input)`` twice,
  compare, print), its output sent to ``/dev/null``; rows rotate over ``bench/_common.load_workload``;
* *touch*: the child writes one byte into each of 1,000 pages the probe wrote before forking, which
  is the price of one copy-on-write fault here.

Each with ``os.fork()`` and with libc's ``fork`` (what the fork-server uses, ``runner/forking.py``).
*ceiling* is the rows/s that ``--cores`` cores would reach if every run cost exactly the child plus
the parent of *script* under libc fork, and nothing else (no daemon, no protocol, no containers); its
ratio is against the unsandboxed baseline of ``throughput.py``, run in this process beforehand.
"""

from __future__ import annotations

import argparse
import base64
import json
import marshal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
from forkserver import docker_args
from throughput import Baseline

from sandboxd.policy import load_policies
from sandboxd.service import configure_message
from sandboxd.settings import BUILTIN_POLICIES

PROBE = r"""
import ctypes, gc, importlib, json, os, resource, sys
spec = json.loads(sys.stdin.readline())
for name in spec["preload"]:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
scripts = spec["scripts"]
import base64, marshal
blobs = [base64.b64decode(blob) for blob in spec["blobs"]]
libc_fork = ctypes.PyDLL(None).fork
pages = bytearray(4096 * 1000)
for offset in range(0, len(pages), 4096):
    pages[offset] = 1

def child(kind, index):
    if kind == "compile":
        compile(scripts[index % len(scripts)], "<script>", "exec")
    elif kind == "script":
        null = os.open("/dev/null", os.O_WRONLY)
        os.dup2(null, 1)
        try:
            exec(compile(scripts[index % len(scripts)], "<script>", "exec"), {"__name__": "__main__"})
        except BaseException:
            pass
        sys.stdout.flush()
    elif kind == "marshal":
        null = os.open("/dev/null", os.O_WRONLY)
        os.dup2(null, 1)
        try:
            exec(marshal.loads(blobs[index % len(blobs)]), {"__name__": "__main__"})
        except BaseException:
            pass
        sys.stdout.flush()
    elif kind == "touch":
        for offset in range(0, len(pages), 4096):
            pages[offset] = 2
    os._exit(0)

def measure(kind, fork, count):
    kids0, own0 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    for index in range(count):
        pid = fork()
        if pid == 0:
            child(kind, index)
        os.waitpid(pid, 0)
    kids1, own1 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    cpu = lambda a, b: (b.ru_utime + b.ru_stime - a.ru_utime - a.ru_stime) * 1000 / count
    return {"child_ms": cpu(kids0, kids1), "parent_ms": cpu(own0, own1),
            "child_faults": (kids1.ru_minflt - kids0.ru_minflt) / count,
            "parent_faults": (own1.ru_minflt - own0.ru_minflt) / count}

for kind in ("exit", "compile", "script", "marshal", "touch"):  # warm the caches the children would share
    measure(kind, os.fork, 5)
gc.collect()
gc.freeze()
results = {}
for name, fork in (("os.fork", os.fork), ("libc fork", libc_fork)):
    for kind in ("exit", "compile", "script", "marshal", "touch"):
        results[f"{name} {kind}"] = [measure(kind, fork, spec["count"]) for _ in range(spec["rounds"])]
print(json.dumps(results))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=300, help="children per measurement (default: 300)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per kind (median shown)")
    parser.add_argument("--cores", type=int, default=2, help="cores for the ceiling (default: 2)")
    parser.add_argument("--baseline-passes", type=int, default=3)
    parser.add_argument("--policy", default="default")
    args = parser.parse_args()
    rows, _ = common.load_workload()
    baseline = Baseline(rows, timeout=10.0)
    try:
        for _ in range(args.baseline_passes):
            baseline.one_pass()
    finally:
        baseline.close()
    base_rate = statistics.median(baseline.rates)
    policy = load_policies(BUILTIN_POLICIES)[args.policy]
    spec = {
        "preload": configure_message(policy)["preload"],
        "scripts": [row.script for row in rows],
        "blobs": [
            base64.b64encode(marshal.dumps(compile(row.script, "<script>", "exec"))).decode() for row in rows
        ],
        "count": args.count,
        "rounds": args.rounds,
    }
    with tempfile.TemporaryDirectory() as folder:
        docker, image = docker_args(args.policy, Path(folder) / "seccomp.json")
        done = subprocess.run(
            ["docker", "run", "--rm", "-i", *docker, image, "python3", "-s", "-B", "-c", PROBE],
            input=json.dumps(spec) + "\n",
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        sys.exit(f"probe failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    results = json.loads(done.stdout)
    print(f"child floor in {image} ({args.rounds} x {args.count} children per line, medians):")
    print(f"  {'':20s} {'child ms':>9s} {'parent ms':>9s} {'child faults':>12s} {'parent faults':>13s}")
    medians = {}
    for label, rounds in results.items():
        median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        medians[label] = median
        print(
            f"  {label:20s} {median['child_ms']:9.2f} {median['parent_ms']:9.2f} "
            f"{median['child_faults']:12.0f} {median['parent_faults']:13.0f}"
        )
    touch = medians["libc fork touch"]
    exit_only = medians["libc fork exit"]
    per_fault_us = (
        1000
        * (touch["child_ms"] - exit_only["child_ms"])
        / max(1.0, touch["child_faults"] - exit_only["child_faults"])
    )
    print(f"  one copy-on-write fault: {per_fault_us:.1f} us of child CPU")
    script = medians["libc fork script"]
    per_run_ms = script["child_ms"] + script["parent_ms"]
    ceiling = args.cores * 1000 / per_run_ms
    print(
        f"baseline (pebble, 1 worker, unsandboxed): {base_rate:.0f} rows/s (passes {[round(r) for r in baseline.rates]})"
    )
    print(
        f"ceiling of one bare fork per row on {args.cores} cores: {ceiling:.0f} rows/s "
        f"({per_run_ms:.2f} ms per row), {ceiling / base_rate:.2f}x the baseline"
    )


if __name__ == "__main__":
    main()
