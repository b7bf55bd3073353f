"""One request's trusted-side text checks, each made once per distinct text.

AZR batches repeat their texts: the k answers to one task share its program and its expected
outputs, and a validation batch proposes the same program more than once (the step in
``bench/azr_step.py`` checks 512 answers with 297 distinct programs and 1,405 distinct expected
outputs out of 2,042). Every check in :mod:`.texts` and :func:`.literal.parse_literal` is a pure
function of its text, so a repeat gets the first result again: the same rejection message, or the
same literal value. This runs on the daemon's event loop before any sandbox starts, so each parse
saved there is wall time saved. A memo lives for one request: nothing carries over to the next.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandboxd.azr.literal import NotLiteral, parse_literal
from sandboxd.azr.texts import TextRejected


class TextMemo:
    def __init__(self) -> None:
        self._rejections: dict[tuple[Callable[[str], None], str], str | None] = {}
        self._literals: dict[str, Any] = {}

    def check(self, check: Callable[[str], None], text: str) -> None:
        """``check(text)``, or what it did the first time: return, or raise the same rejection."""
        key = (check, text)
        try:
            message = self._rejections[key]
        except KeyError:
            try:
                check(text)
                message = None
            except TextRejected as exc:
                message = str(exc)
            self._rejections[key] = message
        if message is not None:
            raise TextRejected(message)

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
        if isinstance(value, _Refused):
            raise NotLiteral(value.message)
        return value


class _Refused:
    """A text that is not a literal, and why (a fresh exception is raised at each repeat)."""

    def __init__(self, message: str) -> None:
        self.message = message
