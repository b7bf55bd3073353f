"""Synthetic curriculum ledgers for bench/ledger.py, made from the real programs in tests/data.

The pool is every distinct program of the AZR seed files and CRUXEval (1,700-odd). Variant ``v`` of a
program shifts its integer constants by ``v % 5`` and adds one assignment ``_c<v % 11> = <v>`` on top, so
every (program, variant) pair is a distinct text that still parses and looks like a small edit of a real
proposal. Bodies have the shapes the service writes (sandboxd/api/records.py): a curriculum step is a
``task_proposed`` entry followed by an ``answer_checked`` entry for the same program, and a few ``verdict``
entries of raw runs; an occasional ``watchdog_decision`` veto keeps the query columns busy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandboxd.ledger.entry import Kind
from sandboxd.ledger.store import Item

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
_INT = re.compile(r"(?<![\w.])(\d+)(?![\w.])")


@dataclass(frozen=True)
class Program:
    code: str
    task_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def pool() -> list[Program]:
    """Distinct programs of CRUXEval and the AZR seed files, in file order."""
    seen: set[str] = set()
    out: list[Program] = []

    def add(code: str, task_type: str, inputs: list[str], outputs: list[str]) -> None:
        if code not in seen:
            seen.add(code)
            out.append(Program(code, task_type, tuple(inputs), tuple(outputs)))

    for line in (DATA / "cruxeval" / "cruxeval.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        add(row["code"], "deduction", [row["input"]], [row["output"]])
    for name in ("7b_coder_seed_io", "7b_seed_io"):
        for line in (DATA / "azr" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            add(row["snippet"], "abduction", [row["input"]], [row["output"]])
    for name in ("7b_coder_code_f_seed_io", "7b_code_f_seed_io"):
        for line in (DATA / "azr" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            add(row["snippet"], "induction", row["inputs"], row["outputs"])
    return out


def variant(code: str, v: int) -> str:
    """A distinct small edit of ``code``: constants shifted by ``v % 5`` and a new first line."""
    shift = v % 5
    body = _INT.sub(lambda m: str(int(m.group(1)) + shift), code) if shift else code
    return f"_c{v % 11} = {v}\n{body}"


def programs(count: int) -> Iterator[Program]:
    """``count`` distinct programs: the pool's variants 0, 1, 2, ... in turn."""
    base = pool()
    for i in range(count):
        p = base[i % len(base)]
        yield Program(variant(p.code, i // len(base) * 7 + i % 3), p.task_type, p.inputs, p.outputs)


def _decision(i: int) -> dict[str, Any]:
    if i % 17 == 0:
        return {
            "decision": "warn",
            "findings": [{"rule_id": "nondeterminism.random", "severity": "low", "mode": "warn"}],
        }
    return {"decision": "allow", "findings": []}


def _usage(i: int) -> dict[str, Any]:
    return {
        "wall_time_seconds": 0.004 + (i % 7) / 1000,
        "cpu_time_seconds": 0.002,
        "peak_memory_bytes": 9_000_000 + i % 4096,
    }


def proposal(p: Program, i: int) -> Item:
    """A ``task_proposed`` entry as ``/v1/azr/validate`` writes it."""
    return Kind.TASK_PROPOSED, {
        "request_id": f"req-{i // 64:08x}",
        "policy": "default",
        "task_type": p.task_type,
        "program": p.code,
        "imports": [],
        "inputs": list(p.inputs),
        "valid": True,
        "reason": "ok",
        "outputs": list(p.outputs),
        "usage": _usage(i),
        "decision": _decision(i),
    }


def answer(p: Program, i: int) -> Item:
    """An ``answer_checked`` entry as ``/v1/azr/check`` writes it."""
    correct = i % 3 != 0
    return Kind.ANSWER_CHECKED, {
        "request_id": f"req-{i // 64:08x}",
        "policy": "default",
        "task_type": p.task_type,
        "program": p.code,
        "input": p.inputs[0] if p.inputs else "",
        "answer": p.outputs[0] if correct and p.outputs else "None",
        "expected_output": p.outputs[0] if p.outputs else "",
        "inputs": None,
        "outputs": None,
        "correct": correct,
        "reward": 1.0 if correct else 0.0,
        "reason": "correct" if correct else "wrong_answer",
        "compared_by": "value",
        "usage": _usage(i),
        "decision": _decision(i),
    }


def run_verdict(p: Program, i: int) -> Item:
    """A ``verdict`` entry as ``POST /v1/runs/batch`` writes it."""
    return Kind.VERDICT, {
        "request_id": f"req-{i // 64:08x}",
        "run_id": f"run-{i:012x}",
        "policy": "default",
        "endpoint": "runs_batch",
        "code": p.code + f"\nprint(f({p.inputs[0] if p.inputs else ''}))",
        "stdin_sha256": None,
        "metadata": {},
        "status": "ok" if i % 23 else "runtime_error",
        "usage": _usage(i),
        "decision": _decision(i),
    }


def curriculum(count: int) -> Iterator[Item]:
    """``count`` entries of a mixed log: proposal, answer, and every fourth step a raw run."""
    made = 0
    for i, p in enumerate(programs(count)):
        for make in (proposal, answer, run_verdict) if i % 4 == 0 else (proposal, answer):
            if made == count:
                return
            yield make(p, i)
            made += 1


def proposals(count: int) -> Iterator[Item]:
    """``count`` ``task_proposed`` entries of distinct programs (the scorecard's worst case)."""
    for i, p in enumerate(programs(count)):
        yield proposal(p, i)
