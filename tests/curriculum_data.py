"""Real programs for the curriculum and scorecard tests, and ledgers built from them.

The pool is every distinct program of the AZR seed files and of CRUXEval (tests/data), with the input and
output each row recorded. ``planted_programs`` makes a family that exists in neither: small bit-twiddling
functions built from random choices of names, operators and statement counts, each carrying a hostile
comment that must never reach the HTML as markup.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandboxd.ledger.entry import Kind

DATA = Path(__file__).parent / "data"
HOSTILE = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"


@dataclass(frozen=True)
class Program:
    code: str
    task_type: str
    inputs: list[str]
    outputs: list[str]
    source: str


def pool() -> list[Program]:
    """Distinct programs of AZR (triplets and induction) and CRUXEval, in file order."""
    seen: set[str] = set()
    out: list[Program] = []

    def add(code: str, task_type: str, inputs: list[str], outputs: list[str], source: str) -> None:
        if code not in seen:
            seen.add(code)
            out.append(Program(code, task_type, inputs, outputs, source))

    for line in (DATA / "cruxeval/cruxeval.jsonl").read_text().splitlines():
        row = json.loads(line)
        add(row["code"], "deduction", [row["input"]], [row["output"]], "cruxeval")
    for name in ("7b_coder_seed_io", "7b_seed_io"):
        for line in (DATA / f"azr/{name}.jsonl").read_text().splitlines():
            row = json.loads(line)
            add(row["snippet"], "abduction", [row["input"]], [row["output"]], "azr")
    for name in ("7b_coder_code_f_seed_io", "7b_code_f_seed_io"):
        for line in (DATA / f"azr/{name}.jsonl").read_text().splitlines():
            row = json.loads(line)
            add(row["snippet"], "induction", row["inputs"], row["outputs"], "azr")
    return out


def cruxeval_kind(code: str) -> str | None:
    """``string`` or ``list`` for CRUXEval programs whose only parameter says what they take, else None."""
    head = code.split("\n", 1)[0]
    if head in ("def f(text):", "def f(s):", "def f(string):", "def f(st):"):
        return "string"
    if head in ("def f(nums):", "def f(array):", "def f(lst):", "def f(arr):", "def f(numbers):"):
        return "list"
    return None


def planted_programs(n: int, seed: int = 7) -> list[Program]:
    """``n`` distinct bit-twiddling programs: a family found in neither AZR nor CRUXEval."""
    rng = random.Random(seed)
    names = ["bits", "mask", "word", "acc", "val", "reg", "flags", "shift"]
    ops = ["&", "|", "^", ">>", "<<"]
    out: list[Program] = []
    seen: set[str] = set()
    while len(out) < n:
        a, b = rng.sample(names, 2)
        lines = [f"# {HOSTILE}", f"def f({a}):", f"    {b} = {rng.randint(1, 255)}"]
        for _ in range(rng.randint(2, 5)):
            target = rng.choice([a, b])
            lines.append(f"    {target} = ({a} {rng.choice(ops)} {rng.randint(1, 7)}) {rng.choice(ops)} {b}")
        if rng.random() < 0.5:
            lines += [f"    while {a} > {rng.randint(100, 999)}:", f"        {a} >>= {rng.randint(1, 3)}"]
        lines.append(f"    return ({a} {rng.choice(ops)} {b}) & 0x{rng.randint(16, 255):x}")
        code = "\n".join(lines)
        if code not in seen:
            seen.add(code)
            out.append(Program(code, "deduction", ["5"], [str(rng.randint(0, 255))], "planted"))
    return out


def proposal(p: Program, *, valid: bool = True) -> tuple[Kind, dict[str, Any]]:
    """A ``task_proposed`` entry as the ledger wiring writes it."""
    return (
        Kind.TASK_PROPOSED,
        {
            "request_id": "r",
            "policy": "default",
            "task_type": p.task_type,
            "program": p.code,
            "imports": [],
            "inputs": p.inputs,
            "valid": valid,
            "reason": None if valid else "runtime_error",
            "outputs": p.outputs if valid else None,
            "usage": None,
            "decision": {"decision": "allow", "findings": []},
        },
    )


def sample(programs: list[Program], n: int, seed: int) -> list[Program]:
    """``n`` draws with replacement (a curriculum repeats itself)."""
    rng = random.Random(seed)
    return [rng.choice(programs) for _ in range(n)]


def entries(programs: Iterable[Program]) -> list[tuple[Kind, dict[str, Any]]]:
    """One valid proposal per program."""
    return [proposal(p) for p in programs]
