"""What the daemon works out from a text alone, kept across requests: bounded, least recently used out first.

AZR checks every solver answer against a task it validated earlier. The task's texts come back with each
answer: abduction's program, induction's hidden inputs, the expected outputs, often many times over many
steps. Each one's trusted-side checks (:mod:`sandboxd.azr.texts`), whether it is a literal, and its
bytecode (:mod:`sandboxd.bytecode`) depend on nothing but the text, so a repeat can take them from here
instead of parsing and compiling again.

Only immutable results are kept: a rejection message (or None), a bool, a literal's comparison key
(tuples, frozensets, numbers and strings: ``azr.equality.comparison_key``), a code object. Literal
*values* are not: a list shared across requests could be changed by one and seen by the next, so each
request builds its own (:class:`sandboxd.azr.memo.TextMemo`).

The bound is an estimate of the bytes held (each text, what is kept with it, and a fixed overhead per
entry), so memory stays bounded whatever the texts are. A hit saves tens of microseconds in a request
that takes milliseconds; docs/security-model.md discusses what that timing could tell another caller.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Final

MISSING: Final = object()  # what :meth:`TextCache.get` returns for a key it does not hold
ENTRY_BYTES = 200  # per entry: the key tuple, the dict slot, the text's str header


class TextCache:
    """A bounded least-recently-used map from keys that embed a text to results worked out from it.

    Used from the event loop only. ``max_bytes`` 0 keeps nothing.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._published = (0, 0)  # hits and misses already counted in the metrics (take_counts)
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Any:
        """The value kept under ``key`` (now the most recently used), or :data:`MISSING`."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return MISSING
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[0]

    def take_counts(self) -> tuple[int, int]:
        """Hits and misses since the last call (for counters that add them up)."""
        hits, misses = self.hits - self._published[0], self.misses - self._published[1]
        self._published = (self.hits, self.misses)
        return hits, misses

    def put(self, key: Hashable, value: Any, size: int) -> None:
        """Keep ``value`` under ``key``; ``size`` estimates the bytes both hold beyond :data:`ENTRY_BYTES`.
        The least recently used entries go until the total is within the bound."""
        weight = ENTRY_BYTES + size
        if weight > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._entries[key] = (value, weight)
        self.bytes += weight
        while self.bytes > self.max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.bytes -= dropped
