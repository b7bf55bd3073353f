"""Checking a batch's texts while its first runs already go, and judging each item as its runs end.

Both AZR endpoints check every task's texts on the trusted side (``validate.prepare``, ``check.plan``)
before its run exists, and judge every result on the trusted side once it is back. Done for the whole
batch at once, each is a stretch of one busy core while the sandboxes idle, at the start and at the end
of every request (together about 0.2 s of the step in ``bench/azr_step.py``). Here each item's runs go
into a :class:`~sandboxd.executor.RunFeed` as soon as the item is checked, the event loop gets a turn
every :data:`CHUNK` items so that the workers send the first runs while the rest is checked, and an
item is judged as soon as its last run is back. The results are the same as doing each step for the
whole batch: each item is made exactly once, in order, and judged once, from its own runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sandboxd.executor import RunFeed
from sandboxd.policy import SandboxPolicy
from sandboxd.run import RunResult, RunSpec
from sandboxd.service import Service

T = TypeVar("T")
R = TypeVar("R")
J = TypeVar("J")
CHUNK = 16  # items checked between two turns of the event loop: about 2-3 ms of checking


@dataclass
class Planned(Generic[R, J]):
    """What :func:`planned_runs` made of a batch."""

    made: list[R]  # ``make`` of each item, in order
    runs: list[list[RunResult]]  # each item's runs (none for an item that gave no spec)
    judged: list[J | None]  # ``judge`` of each item whose runs all ended, where it gave a value
    before: list[list[RunResult]] = field(default_factory=list)  # the results of the stages before


class _Batch(Generic[T, R, J]):
    """The bookkeeping between the items, their specs in the feed, and their results."""

    def __init__(
        self,
        make: Callable[[T], R],
        specs_of: Callable[[R], Sequence[RunSpec]],
        judge: Callable[[int, R, list[RunResult]], J | None] | None,
        bound: int,
    ) -> None:
        self.make, self.specs_of, self.judge = make, specs_of, judge
        self.made: list[R] = []
        self.spans: list[range] = []  # each item's spec indices in the feed
        self.owner: list[int] = []  # each spec's item
        self.left: list[int] = []  # each item's runs still out
        self.judged: list[J | None] = []
        self.feed = RunFeed(bound, on_result=self._ended)

    async def fill(self, items: Sequence[T]) -> None:
        try:
            for number, item in enumerate(items, 1):
                made = self.make(item)
                specs = self.specs_of(made)
                start = len(self.feed.specs)
                self.made.append(made)
                self.spans.append(range(start, start + len(specs)))
                self.left.append(len(specs))
                self.judged.append(None)
                self.owner.extend([number - 1] * len(specs))
                for spec in specs:
                    self.feed.put(spec)
                if number % CHUNK == 0:
                    await asyncio.sleep(0)
        finally:
            self.feed.close()

    def _ended(self, index: int, _result: RunResult) -> None:
        item = self.owner[index]
        self.left[item] -= 1
        if self.left[item] == 0 and self.judge is not None:
            self.judged[item] = self.judge(item, self.made[item], self.runs_of(item, self.feed.results))

    def runs_of(self, item: int, results: dict[int, RunResult] | list[RunResult]) -> list[RunResult]:
        return [results[index] for index in self.spans[item]]


async def planned_runs(
    service: Service,
    policy: SandboxPolicy,
    items: Sequence[T],
    make: Callable[[T], R],
    specs_of: Callable[[R], Sequence[RunSpec]],
    *,
    bound: int,
    before: Sequence[Sequence[RunSpec]] = (),
    judge: Callable[[int, R, list[RunResult]], J | None] | None = None,
) -> Planned[R, J]:
    """``make`` every item (in order) and run the specs each one gives, as they come, on ``policy``'s
    sandboxes, after the stages ``before`` (``Service.run_stages``). ``bound`` is the most specs the
    items can give. ``judge`` (if any) is called with an item's index, what ``make`` made of it and its
    runs, as soon as they have all ended; it may return ``None`` to leave the item to the caller (as
    is every item whose run never got a result)."""
    batch: _Batch[T, R, J] = _Batch(make, specs_of, judge, bound)
    filling = asyncio.ensure_future(batch.fill(items))
    try:
        stages = await service.run_stages(policy, [*before, batch.feed])
    except BaseException:
        filling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await filling
        raise
    finally:
        # The feed's listener is the batch's method: without this the two form a cycle that keeps the
        # whole request (texts, runs, results) alive until a full collection, which the daemon's
        # tuned collector makes rare (heap.py): about 15 MB per AZR step here.
        batch.feed.on_result = None
    await filling
    results = stages[-1]
    runs = [batch.runs_of(item, results) for item in range(len(batch.made))]
    return Planned(batch.made, runs, batch.judged, list(stages[:-1]))
