"""Pure decisions of the spot checks: which task an item belongs to, and whether it is sampled.

- **task key**: the sha256 of the task's program ``f`` (AZR defines a task by its program), or for an
  induction answer without a ``reference_program``, of its shown input/output pairs. Labels of any item
  of a task feed the preference component of later answers to that task.
- **draw**: a number in [0, 1) from sha256(seed, kind, the item's content), where the content is the
  model-written fields of its ledger body (``CONTENT_FIELDS``). An item is sampled when its draw is below
  the policy's fraction. The same item always gets the same decision (resubmitting cannot re-roll it), and
  an auditor with the seed can recompute every decision from the ledger entry alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sandboxd.azr.schemas import Answer, ProposedTask
from sandboxd.ledger.entry import canonical_json

from .policy import ReviewPolicy

_SCALE = float(2**64)
CONTENT_FIELDS: dict[str, tuple[str, ...]] = {
    "task_proposed": ("task_type", "program", "imports", "inputs"),
    "answer_checked": ("task_type", "program", "input", "answer", "expected_output", "inputs", "outputs"),
}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def program_key(program: str) -> str:
    """The task key of a task defined by ``program``."""
    return _sha256(program.encode("utf-8", "surrogatepass"))


def task_key_of_task(task: ProposedTask) -> str:
    """The task key of a proposed task."""
    return program_key(task.program)


def task_key_of_answer(answer: Answer) -> str:
    """The task key of the task an answer solves."""
    program = answer.reference_program if answer.task_type == "induction" else answer.program
    if program is not None:
        return program_key(program)
    return _sha256(canonical_json({"inputs": answer.inputs, "outputs": answer.outputs}))


def content(kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """What the draw of a ledger body hashes: its model-written fields (not times, ids or results)."""
    return {name: body.get(name) for name in CONTENT_FIELDS[kind]}


def draw(seed: str, kind: str, content: Any) -> float:
    """The item's seeded uniform draw in [0, 1)."""
    digest = hashlib.sha256(canonical_json([seed, kind, content])).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def sampled(policy: ReviewPolicy, kind: str, content: Any) -> bool:
    """Whether the item goes into the review queue."""
    if policy.sample_fraction == 0:
        return False
    return draw(policy.seed.get_secret_value(), kind, content) < policy.sample_fraction
