"""What ``/v1/azr`` does after execution: shape rewards, ledger the items, queue the sampled ones for review.

Order (DESIGN.md §4 steps 6-7): the value-shaped reward is computed (the task's latest human label is looked
up only when the policy weighs preference), the entries are appended durably with their seeded spot-check
decision, then the sampled entries are queued under their ledger seq. A queue that cannot record fails the
request with 503, as the ledger does.
"""

from __future__ import annotations

from collections.abc import Sequence

from sandboxd.azr.schemas import Answer, CheckResult, ProposedTask, ValidateResult
from sandboxd.ledger.entry import Kind, now
from sandboxd.ledger.store import Item
from sandboxd.policy import SandboxPolicy
from sandboxd.reviews.sampling import content, sampled, task_key_of_answer, task_key_of_task
from sandboxd.reviews.store import ReviewItem
from sandboxd.reward.shaping import shape
from sandboxd.service import Service

from . import records


def _spot_checked(policy: SandboxPolicy, items: Sequence[Item]) -> list[Item]:
    """The items with their seeded sampling decision in ``spot_check`` (docs/reviews.md)."""
    if policy.reviews.sample_fraction == 0:
        return list(items)  # the record functions already wrote spot_check: false
    return [
        (kind, {**body, "spot_check": sampled(policy.reviews, kind.value, content(kind.value, body))})
        for kind, body in items
    ]


async def _ledger_and_queue(
    service: Service, policy: SandboxPolicy, items: Sequence[Item], keys: Sequence[str]
) -> None:
    seqs = await service.ledger.append(items)
    stamp = now()
    queued = [
        ReviewItem(seq, Kind(kind).value, key, policy.name, stamp, dict(body))
        for seq, (kind, body), key in zip(seqs, items, keys, strict=True)
        if body["spot_check"]
    ]
    await service.reviews.enqueue(queued)


async def proposed(
    service: Service, policy: SandboxPolicy, tasks: Sequence[ProposedTask], results: Sequence[ValidateResult]
) -> None:
    """Ledger proposed tasks and queue the sampled ones."""
    items = _spot_checked(
        policy,
        [
            records.task_proposed(task, result, policy.name)
            for task, result in zip(tasks, results, strict=True)
        ],
    )
    await _ledger_and_queue(service, policy, items, [task_key_of_task(t) for t in tasks])


async def checked(
    service: Service, policy: SandboxPolicy, answers: Sequence[Answer], results: Sequence[CheckResult]
) -> list[CheckResult]:
    """Shape the rewards of checked answers, ledger them, queue the sampled ones; the shaped results."""
    keys = [task_key_of_answer(answer) for answer in answers]
    shaping = policy.value_reward
    labels = await service.reviews.preferences(keys) if shaping.weights.preference > 0 else {}
    shaped = [
        result.model_copy(update={"value_reward": shape(shaping, answer, result, labels.get(key))})
        for answer, result, key in zip(answers, results, keys, strict=True)
    ]
    items = _spot_checked(
        policy,
        [
            records.answer_checked(answer, result, policy.name)
            for answer, result in zip(answers, shaped, strict=True)
        ],
    )
    await _ledger_and_queue(service, policy, items, keys)
    return shaped
