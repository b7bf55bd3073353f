"""The review queue's storage Protocol and rows. Backends live next to the ledger's, in the same database."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Label = Literal["approve", "flag"]


@dataclass(frozen=True)
class ReviewItem:
    """A sampled ledger entry awaiting (or given) a label; ``seq`` is its ledger seq and the item's id."""

    seq: int
    kind: str  # the ledger kind: task_proposed or answer_checked
    task_key: str
    policy: str
    time: str
    body: dict[str, Any]  # the entry's body as appended (the ledger holds the authoritative copy)


@dataclass(frozen=True)
class ReviewLabel:
    """A reviewer's label on one item; ``ledger_seq`` is None until its ``review_label`` entry is durable."""

    item: int
    task_key: str
    label: Label
    comment: str
    reviewer: str
    time: str
    ledger_seq: int | None = None


class ReviewStore(Protocol):
    """The review queue. Every method commits before it returns.

    - ``enqueue`` adds items; an item already queued (same seq) is left as it is.
    - ``pending`` returns up to ``limit`` unlabelled items with seq above ``after``, in seq order.
    - ``claim`` stores a label unless the item already has one: True if stored, False if it had one.
    - ``settle`` records the ledger seq of a claimed label; ``release`` removes a claim whose ledger append
      failed, so that the item can be labelled again.
    - ``latest_labels`` maps each given task key to its most recent settled label.
    """

    def enqueue(self, items: Sequence[ReviewItem]) -> None: ...

    def item(self, seq: int) -> ReviewItem | None: ...

    def pending(self, after: int, limit: int) -> list[ReviewItem]: ...

    def claim(self, label: ReviewLabel) -> bool: ...

    def settle(self, item: int, ledger_seq: int) -> None: ...

    def release(self, item: int) -> None: ...

    def latest_labels(self, task_keys: Iterable[str]) -> dict[str, Label]: ...

    def close(self) -> None: ...
