"""One AZR training step's executor load, through trainer_client, against an unsandboxed baseline.

The step: validate 64 deduction, 64 abduction and 64 induction proposals (induction with 10 inputs
each), then check 512 answers (deduction, abduction and induction, round robin). Tasks come from
AZR's released seed data; answers are the recorded gold ones, so most are correct.

* **sandboxd**: ``SandboxClient.validate`` + ``SandboxClient.check`` over HTTP to a fresh daemon.
* **baseline**: the way AZR's executor works, unsandboxed: one persistent ``pebble`` worker, each
  program ``exec``'d in a fresh globals dict with a 10 s timeout; f(input) twice for validation,
  ``eval`` of answer and gold for checks.

Every step sends new texts, as a trainer's steps do: the proposals and the solvers' answers of step
``n`` carry ``n`` trailing spaces (arguments, answers) or a trailing comment (programs), which changes the
text and nothing else (``step_texts``). The texts of the tasks the answers are checked against (their
programs, hidden inputs and expected outputs) stay the same, as those of tasks drawn from AZR's buffer
of validated tasks do. So the daemon's cache of texts (``sandboxd/textcache.py``) sees what it would see
in training: nothing of the proposals, and the answers' tasks again.

The two paths run side by side in one process: one step of each per pair, the order swapped every pair,
and each step starts on a quiet machine (``_common.wait_quiet``: the daemon's pools back at their full
warm count, nothing starting), the way executor bursts arrive between a trainer's GPU phases. The
host's speed drifts by up to 2x within minutes here; pairs keep both paths in the same minutes.

Prints seconds per step for both, the ratio of the medians (target: sandboxd ≤ 4x the baseline, goal
3x) and the median of the pairs' ratios.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pebble import ProcessPool

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

import _common as common

from trainer_client import SandboxClient

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "azr"


def _imports(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(v) for v in ast.literal_eval(value)] if str(value).strip() else []


def _texts(value: Any) -> list[str]:
    return [str(v) for v in (value if isinstance(value, list) else ast.literal_eval(value))]


def load_step() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """64 + 64 + 64 proposals and 512 answers from AZR's seed files."""
    ded = [json.loads(line) for line in (DATA / "7b_coder_seed_io.jsonl").open()]
    abd = [json.loads(line) for line in (DATA / "7b_seed_io.jsonl").open()]
    ind = [json.loads(line) for line in (DATA / "7b_coder_code_f_seed_io.jsonl").open()]
    usable = lambda r: r["output"].strip() and len(r["output"]) != 403  # noqa: E731 - empty and truncated records
    ded = [r for r in ded if usable(r)]
    abd = [r for r in abd if usable(r)]
    tasks: list[dict[str, Any]] = []
    for row in ded[:64]:
        tasks.append(
            {
                "task_type": "deduction",
                "program": row["snippet"],
                "imports": _imports(row["imports"]),
                "inputs": [row["input"]],
            }
        )
    for row in abd[:64]:
        tasks.append(
            {
                "task_type": "abduction",
                "program": row["snippet"],
                "imports": _imports(row["imports"]),
                "inputs": [row["input"]],
            }
        )
    for row in ind[:64]:
        tasks.append(
            {
                "task_type": "induction",
                "program": row["snippet"],
                "imports": _imports(row["imports"]),
                "inputs": _texts(row["inputs"])[:10],
            }
        )
    answers: list[dict[str, Any]] = []
    for i in range(512):
        kind = i % 3
        if kind == 0:
            row = ded[i % len(ded)]
            answers.append(
                {
                    "task_type": "deduction",
                    "program": row["snippet"],
                    "imports": _imports(row["imports"]),
                    "input": row["input"],
                    "expected_output": row["output"],
                    "answer": row["output"],
                }
            )
        elif kind == 1:
            row = abd[i % len(abd)]
            answers.append(
                {
                    "task_type": "abduction",
                    "program": row["snippet"],
                    "imports": _imports(row["imports"]),
                    "expected_output": row["output"],
                    "answer": row["input"],
                }
            )
        else:
            row = ind[i % len(ind)]
            answers.append(
                {
                    "task_type": "induction",
                    "imports": _imports(row["imports"]),
                    "answer": row["snippet"],
                    "inputs": _texts(row["inputs"])[:10],
                    "outputs": _texts(row["outputs"])[:10],
                }
            )
    return tasks, answers


def step_texts(
    tasks: list[dict[str, Any]], answers: list[dict[str, Any]], number: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Step ``number``'s proposals and answers: new texts of the same meaning (the module's docstring).
    The answers' tasks (program, hidden inputs, expected outputs) keep their texts."""
    pad, note = " " * number, f"\n# step {number}" if number else ""
    fresh_tasks = [
        {**task, "program": task["program"] + note, "inputs": [text + pad for text in task["inputs"]]}
        for task in tasks
    ]
    fresh_answers = [
        {**answer, "answer": answer["answer"] + (note if answer["task_type"] == "induction" else pad)}
        for answer in answers
    ]
    return fresh_tasks, fresh_answers


# -- baseline: AZR's executor, unsandboxed -------------------------------------------------------
def _validate_one(imports: list[str], program: str, inputs: list[str]) -> list[bool]:
    same = []
    for text in inputs:
        namespace: dict[str, Any] = {}
        exec("\n".join([*imports, program]), namespace)
        first = repr(eval(f"f({text})", namespace))
        second = repr(eval(f"f({text})", namespace))
        same.append(first == second)
    return same


def _check_one(answer: dict[str, Any]) -> bool:
    namespace: dict[str, Any] = {}
    exec("\n".join(answer["imports"]), namespace)
    if answer["task_type"] == "deduction":
        return bool(eval(answer["answer"], namespace) == eval(answer["expected_output"], namespace))
    if answer["task_type"] == "abduction":
        exec(answer["program"], namespace)
        return bool(eval(f"f({answer['answer']})", namespace) == eval(answer["expected_output"], namespace))
    exec(answer["answer"], namespace)
    return all(
        eval(f"f({i})", namespace) == eval(o, namespace)
        for i, o in zip(answer["inputs"], answer["outputs"], strict=True)
    )


def baseline_step(
    pool: ProcessPool, tasks: list[dict[str, Any]], answers: list[dict[str, Any]], timeout: float
) -> float:
    started = time.perf_counter()
    futures = [
        pool.schedule(_validate_one, args=(t["imports"], t["program"], t["inputs"]), timeout=timeout)
        for t in tasks
    ]
    futures += [pool.schedule(_check_one, args=(a,), timeout=timeout) for a in answers]
    for future in futures:
        with contextlib.suppress(concurrent.futures.TimeoutError, Exception):
            future.result()
    return time.perf_counter() - started


def sandboxd_step(
    client: SandboxClient, tasks: list[dict[str, Any]], answers: list[dict[str, Any]]
) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    validated = client.validate(tasks)
    checked = client.check(answers)
    elapsed = time.perf_counter() - started
    return elapsed, {"valid": sum(r.valid for r in validated), "correct": sum(r.correct for r in checked)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=5, help="steps per path (median reported)")
    parser.add_argument("--policy", default="default", help="sandbox policy for the sandboxd path")
    parser.add_argument("--timeout", type=float, default=10.0, help="baseline per-call timeout")
    args = parser.parse_args()
    tasks, answers = load_step()
    print(
        f"step: {len(tasks)} proposals ({sum(len(t['inputs']) for t in tasks)} inputs), {len(answers)} answers"
    )
    # The unsandboxed worker runs model code: at least keep its files out of the checkout.
    pool = ProcessPool(max_workers=1, initializer=os.chdir, initargs=(tempfile.mkdtemp(),))
    base: list[float] = []
    runs: list[tuple[float, dict[str, int]]] = []
    try:
        with common.running_daemon(tag="step") as daemon:
            with SandboxClient(daemon.base_url, policy=args.policy, chunk_size=1024, timeout=600) as client:
                # One whole step of each path to warm up (the baseline's worker imports numpy once, as
                # AZR's does), then steps side by side: each pair runs both paths in turn, the order
                # swapped every pair, each on a quiet machine (no container start or teardown left).
                baseline_step(pool, tasks, answers, args.timeout)
                common.wait_quiet(daemon)
                sandboxd_step(client, tasks, answers)
                for step in range(args.steps):
                    proposed, answered = step_texts(tasks, answers, step + 1)  # the same for both paths
                    for path in ("baseline", "sandboxd") if step % 2 == 0 else ("sandboxd", "baseline"):
                        common.wait_quiet(daemon)
                        if path == "baseline":
                            base.append(baseline_step(pool, proposed, answered, args.timeout))
                        else:
                            runs.append(sandboxd_step(client, proposed, answered))
            rss = daemon.rss.peak_bytes
    finally:
        pool.close()
        pool.join(timeout=30)
    seconds = [r[0] for r in runs]
    base_median, ours_median = statistics.median(base), statistics.median(seconds)
    ratio = ours_median / base_median
    paired = statistics.median(ours / theirs for ours, theirs in zip(seconds, base, strict=True))
    print(
        f"baseline (pebble, 1 worker, unsandboxed): median {base_median:.3f} s/step  {[f'{s:.3f}' for s in base]}"
    )
    print(
        f"sandboxd ({args.policy}):                  median {ours_median:.3f} s/step  {[f'{s:.3f}' for s in seconds]}"
    )
    print(
        f"sanity: {runs[-1][1]['valid']}/{len(tasks)} valid, {runs[-1][1]['correct']}/{len(answers)} correct"
    )
    print(f"paired ratio (median of each pair's sandboxd/baseline): {paired:.2f}x")
    print(
        f"ratio sandboxd/baseline: {ratio:.2f}x  (target <= 4x, goal 3x): {'PASS' if ratio <= 4 else 'FAIL'}"
    )
    if rss:
        print(f"daemon peak RSS: {rss / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
