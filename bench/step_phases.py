"""Where one AZR step's time goes inside the daemon: when each phase of validate and check ran.

``azr_step.py`` says how long a step takes; this says which parts of it keep one core busy while the
sandboxes wait. It starts a daemon whose AZR phases are wrapped with timers (the wrappers only log
``perf_counter`` pairs to a file; nothing else changes), runs the step of ``azr_step.py`` through
``trainer_client`` a few times, each on a quiet pool, and prints for every phase how often it ran, its
summed time, and the first start and last end, in ms from the moment the validate request reached the
daemon. A phase whose span ends before the first run starts, or starts after the last run ends, is
serial: the step waits on it with idle sandboxes.

    .venv/bin/python bench/step_phases.py --steps 3

Not a timed target: the wrappers add a little to each call. Compare spans, not totals, across builds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
import azr_step

from trainer_client import SandboxClient

# (module, attribute) of each timed phase, in the order a step meets them.
PHASES = (
    ("sandboxd.api.observability", "ObservabilityMiddleware.__call__"),
    ("sandboxd.azr.validate", "validate"),
    ("sandboxd.azr.validate", "prepare"),
    ("sandboxd.service", "Service.run_stages"),
    ("sandboxd.azr.validate", "judge"),
    ("sandboxd.api.curation", "proposed"),
    ("sandboxd.azr.check", "check"),
    ("sandboxd.azr.check", "_sandboxed_expected"),
    ("sandboxd.azr.check", "plan"),
    ("sandboxd.azr.check", "judge"),
    ("sandboxd.api.curation", "checked"),
)

# The daemon's launcher: wrap each phase, then run the CLI. Functions are looked up through their
# modules at call time everywhere in sandboxd, so replacing the module attribute times every call.
_LAUNCH = r"""
import functools, importlib, inspect, os, sys, time
LOG = open(os.environ["SANDBOXD_PHASE_LOG"], "a", buffering=1)
def wrap(module, attribute):
    label = module.rsplit(".", 1)[-1] + "." + attribute
    owner = importlib.import_module(module)
    *path, name = attribute.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    if inspect.iscoroutinefunction(original):
        async def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                LOG.write(f"{label} {started:.6f} {time.perf_counter():.6f}\n")
    else:
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                LOG.write(f"{label} {started:.6f} {time.perf_counter():.6f}\n")
    setattr(owner, name, functools.wraps(original)(timed))
for module, attribute in PHASES:
    wrap(module, attribute)
from sandboxd.cli import main
sys.argv[0] = "sandboxd"
sys.exit(main())
"""


def _spans(log: Path) -> list[tuple[str, float, float]]:
    rows = [line.split() for line in log.read_text().splitlines() if line.strip()]
    return [(name, float(start), float(end)) for name, start, end in rows]


def report(rows: list[tuple[str, float, float]]) -> list[str]:
    """One line per phase: calls, summed ms, first start and last end in ms from the first start."""
    if not rows:
        return ["  (no phase ran)"]
    origin = min(start for _, start, _ in rows)
    lines = []
    for module, attribute in PHASES:
        label = module.rsplit(".", 1)[-1] + "." + attribute
        mine = [(start, end) for name, start, end in rows if name == label]
        if not mine:
            continue
        total = sum(end - start for start, end in mine) * 1000
        first = (min(start for start, _ in mine) - origin) * 1000
        last = (max(end for _, end in mine) - origin) * 1000
        lines.append(
            f"  {label:48s} n={len(mine):4d} total {total:7.1f} ms  span {first:7.1f} .. {last:7.1f}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=3, help="measured steps (default: 3)")
    args = parser.parse_args()
    tasks, answers = azr_step.load_step()
    with tempfile.TemporaryDirectory(prefix="sandboxd-phases-") as folder:
        log = Path(folder) / "phases.log"
        log.touch()
        os.environ["SANDBOXD_PHASE_LOG"] = str(log)
        launch = f"PHASES = {PHASES!r}\n{_LAUNCH}"
        with (
            common.running_daemon(tag="phases", launcher=(sys.executable, "-c", launch)) as daemon,
            SandboxClient(daemon.base_url, chunk_size=1024, timeout=600) as client,
        ):
            client.validate(tasks)  # warm-up step, not reported
            client.check(answers)
            for step in range(args.steps):
                proposed, answered = azr_step.step_texts(tasks, answers, step + 1)
                common.wait_quiet(daemon)
                log.write_text("")
                started = time.perf_counter()
                client.validate(proposed)
                validated = time.perf_counter()
                client.check(answered)
                checked = time.perf_counter()
                time.sleep(0.2)  # let the last lines reach the log
                print(
                    f"step {step + 1}: validate {validated - started:.3f} s, check {checked - validated:.3f} s"
                )
                print("\n".join(report(_spans(log))))


if __name__ == "__main__":
    main()
