"""One request's trusted-side text checks, each made once per distinct text.

AZR batches repeat their texts: the k answers to one task share its program and its expected
outputs, and a validation batch proposes the same program more than once (the step in
``bench/azr_step.py`` checks 512 answers with 297 distinct programs and 1,405 distinct expected
outputs out of 2,042). Every check in :mod:`.texts` and :func:`.literal.parse_literal` is a pure
function of its text, so a repeat gets the first result again: the same rejection message, or the
same literal value. This runs on the daemon's event loop before any sandbox starts, so each parse
saved there is wall time saved.

A memo lives for one request. Behind it is the daemon's :class:`~sandboxd.textcache.TextCache`, which
keeps across requests the checks' outcomes, whether a text is a literal, and a literal's comparison
key (the texts of a validated task come back with every answer to it), but not literal values: those
are mutable, and stay in the request's memo.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from sandboxd.azr.equality import comparison_key
from sandboxd.azr.literal import NotLiteral, parse_literal
from sandboxd.azr.texts import TextRejected
from sandboxd.textcache import MISSING, TextCache

# A comparison key's size per character of its literal's text, estimated for the shared cache's bound:
# about 250 bytes of tuples for the 9 characters of "[1, 2, 3]".
KEY_BYTES_PER_CHAR = 32


class TextMemo:
    def __init__(self, shared: TextCache | None = None) -> None:
        self._rejections: dict[tuple[Callable[[str], None], str], str | None] = {}
        self._literals: dict[str, Any] = {}
        self._keys: dict[str, Any] = {}
        self._shared = shared if shared is not None else TextCache(0)  # 0: keeps nothing

    def check(self, check: Callable[[str], None], text: str) -> None:
        """``check(text)``, or what it did the first time: return, or raise the same rejection."""
        key = (check, text)
        try:
            message = self._rejections[key]
        except KeyError:
            kept = self._shared.get(key)
            if kept is MISSING:
                try:
                    check(text)
                    message = None
                except TextRejected as exc:
                    message = str(exc)
                self._shared.put(key, message, len(text) + len(message or ""))
            else:
                message = cast(str | None, kept)
            self._rejections[key] = message
        if message is not None:
            raise TextRejected(message)

    def is_literal(self, text: str) -> bool:
        """Whether :meth:`literal` would return a value. Across requests this is known without a parse,
        so a request can tell which texts need a sandbox before it builds any value."""
        if text not in self._literals:
            known = self._shared.get(("literal", text))
            if known is not MISSING:
                return bool(known)
        try:
            self.literal(text)
        except NotLiteral:
            return False
        return True

    def literal_key(self, text: str) -> Any:
        """The comparison key (``equality.comparison_key``) of a literal text's value, or raise
        :class:`.literal.NotLiteral`. Keys are immutable (tuples, frozensets, numbers, strings), so unlike
        values they are kept across requests: an expected output is compared without being read again."""
        key = self._keys.get(text)
        if key is None:
            key = self._shared.get(("literal-key", text))
            if key is MISSING:
                key = comparison_key(self.literal(text))
                self._shared.put(("literal-key", text), key, len(text) * KEY_BYTES_PER_CHAR)
            self._keys[text] = key
        return key

    def literal(self, text: str) -> Any:
        """The value of a literal text (shared by every repeat: read it, never change it), or raise
        :class:`.literal.NotLiteral`."""
        try:
            value = self._literals[text]
        except KeyError:
            try:
                value = parse_literal(text)
            except NotLiteral as exc:
                value = _Refused(str(exc))
            self._literals[text] = value
            # whether it is one, never the value (textcache.py)
            self._shared.put(("literal", text), not isinstance(value, _Refused), len(text))
        if isinstance(value, _Refused):
            raise NotLiteral(value.message)
        return value


class _Refused:
    """A text that is not a literal, and why (a fresh exception is raised at each repeat)."""

    def __init__(self, message: str) -> None:
        self.message = message
