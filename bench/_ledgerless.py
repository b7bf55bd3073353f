"""``sandboxd`` with the ledger replaced by a no-op, for bench/ledger.py's "ledger off" arm only.

The service has no switch to turn its ledger off, and must not have one: an unrecorded answer is what the
ledger exists to prevent. To price ledgering, this launcher swaps ``Recorder`` for ``NullRecorder`` in
this process only and then runs the ordinary CLI (``python bench/_ledgerless.py serve --port N``). Nothing
is appended, and the auditor API answers 503.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

import sandboxd.service
from sandboxd.cli import main
from sandboxd.exceptions import LedgerUnavailable
from sandboxd.ledger.recorder import Recorder
from sandboxd.ledger.store import Item, LedgerStore

T = TypeVar("T")


class NullRecorder(Recorder):
    """Acknowledges appends at once and stores nothing."""

    async def start(self) -> None:
        self.problem = None

    async def append(self, items: Sequence[Item]) -> list[int]:
        return list(range(len(items)))

    async def call(self, work: Callable[[LedgerStore], T]) -> T:
        raise LedgerUnavailable("ledger unavailable: turned off for this benchmark")

    async def stop(self) -> None:
        self._thread.shutdown(wait=False)


if __name__ == "__main__":
    sandboxd.service.Recorder = NullRecorder  # type: ignore[attr-defined]  # the bench-only swap (docstring)
    sys.exit(main())
