"""Two sandboxd builds or policy sets, side by side on the AZR step of ``azr_step.py``, alternating.

The host's speed drifts by up to 2x within minutes, so one build measured after another says little.
This starts two daemons, A and B, and runs the step on each in turn (ABAB..., then BABA... every other
round), so drift hits both alike. It prints each side's step times, their medians, and the median of
the paired ratios B/A. Both daemons stay up throughout; each one's pool refills while the other works,
as it would between the steps of a real trainer.

A side is the working tree's daemon, optionally with another policy directory, or another checkout of
sandboxd (``git worktree add /tmp/base <commit>``), run from this virtualenv with that checkout first
on the path. A checkout's runner image must exist (``sandboxd image build`` in it, or in this tree when
the runner is unchanged). Examples::

    .venv/bin/python bench/compare_step.py --checkout-a /tmp/base          # a commit against this tree
    .venv/bin/python bench/compare_step.py --policies-b /tmp/policies-p3   # a policy change
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
import azr_step

from trainer_client import SandboxClient

_LAUNCH = "import sys; from sandboxd.cli import main; sys.argv[0] = 'sandboxd'; sys.exit(main())"


@contextlib.contextmanager
def side(tag: str, checkout: str | None, policies: str | None) -> Iterator[common.Daemon]:
    """A daemon of one side; ``-P`` keeps the working directory (this tree) off the path of a checkout.

    The daemon takes its environment when it starts, so the caller's is restored right after (the
    other side starts from it)."""
    saved = {name: os.environ.get(name) for name in ("PYTHONPATH", "SANDBOXD_POLICIES_DIR")}
    launcher: tuple[str, ...] = (str(common.SANDBOXD),)
    with contextlib.ExitStack() as stack:
        try:
            if checkout:
                os.environ["PYTHONPATH"] = str(Path(checkout).resolve())
                launcher = (sys.executable, "-P", "-c", _LAUNCH)
            if policies:
                os.environ["SANDBOXD_POLICIES_DIR"] = str(Path(policies).resolve())
            daemon = stack.enter_context(common.running_daemon(tag=tag, launcher=launcher))
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        yield daemon


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for name in ("a", "b"):
        parser.add_argument(f"--checkout-{name}", help=f"side {name.upper()}: another sandboxd checkout")
        parser.add_argument(f"--policies-{name}", help=f"side {name.upper()}: a policy directory")
    parser.add_argument("--steps", type=int, default=10, help="steps per side (default: 10)")
    args = parser.parse_args()
    tasks, answers = azr_step.load_step()
    with (
        side("a", args.checkout_a, args.policies_a) as first,
        side("b", args.checkout_b, args.policies_b) as second,
        SandboxClient(first.base_url, chunk_size=1024, timeout=600) as client_a,
        SandboxClient(second.base_url, chunk_size=1024, timeout=600) as client_b,
    ):
        sides = {"A": (client_a, first), "B": (client_b, second)}
        for client, _ in sides.values():
            azr_step.sandboxd_step(client, tasks, answers)  # warm-up
        seconds: dict[str, list[float]] = {"A": [], "B": []}
        cpu: dict[str, list[float]] = {"A": [], "B": []}  # the daemon process's CPU seconds per step
        for number in range(args.steps):
            proposed, answered = azr_step.step_texts(tasks, answers, number + 1)  # new texts, both sides
            for name in ("A", "B") if number % 2 == 0 else ("B", "A"):
                client = sides[name][0]
                for _, each in sides.values():  # neither side's container starts overlap a step
                    common.wait_quiet(each)
                before = common.process_cpu_seconds(sides[name][1].process.pid)
                seconds[name].append(azr_step.sandboxd_step(client, proposed, answered)[0])
                cpu[name].append(common.process_cpu_seconds(sides[name][1].process.pid) - before)
    for name, values in seconds.items():
        print(f"{name}: median {statistics.median(values):.3f} s/step  {[round(v, 3) for v in values]}")
    for name, values in cpu.items():
        print(f"{name}: daemon CPU median {statistics.median(values):.3f} s/step")
    paired = [b / a for a, b in zip(seconds["A"], seconds["B"], strict=True)]
    print(
        f"B/A: paired median {statistics.median(paired):.3f}, "
        f"ratio of medians {statistics.median(seconds['B']) / statistics.median(seconds['A']):.3f}"
    )
    paired_cpu = [b / a for a, b in zip(cpu["A"], cpu["B"], strict=True)]
    print(f"B/A daemon CPU: paired median {statistics.median(paired_cpu):.3f}")


if __name__ == "__main__":
    main()
