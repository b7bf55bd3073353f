"""Child-side canonical encoder: exact builtin values to type-tagged JSON text.

Every reference used here is captured when the module is imported, which happens in the
fork-server before any model code exists. A program that monkeypatches ``json``, ``repr`` or the
builtins therefore cannot change how its values are reported. Type checks use ``type(x) is T``
and never call ``__eq__``, ``__hash__`` or ``isinstance`` on model objects.

Tags (the decoder in :mod:`sandboxd.canonical` is the inverse):
``null``/``true``/``false`` for None and bools, ``["i", digits]``, ``["f", repr]``, ``["s", text]``,
``["b", base64]``, ``["l"|"t"|"S"|"F", [items]]`` for list, tuple, set, frozenset,
``["d", [[key, value], ...]]`` and ``["r", repr]`` for a value outside the canonical types.
"""

from __future__ import annotations

import base64
import json.encoder

TYPE_CHECKING = False  # typing itself is not imported: see child.ChildFds
if TYPE_CHECKING:
    from typing import Any

_type = type
_len = len
_int_repr = int.__repr__
_float_repr = float.__repr__
_b64 = base64.b64encode
_bytes_decode = bytes.decode
_str_join = str.join
_list_append = list.append
_dict_items = dict.items
_repr = repr
_escape = json.encoder.encode_basestring_ascii
_NoneType = type(None)

_SEQUENCE_TAGS: dict[type, str] = {list: "l", tuple: "t", set: "S", frozenset: "F"}


class EncodeLimitError(Exception):
    """The value is deeper or larger than the caps allow."""


class Encoder:
    """Encode one value tree under caps on depth, node count, digits and text size."""

    def __init__(
        self,
        *,
        max_depth: int = 64,
        max_nodes: int = 100_000,
        max_int_digits: int = 4000,
        max_text_bytes: int = 4 * 1024 * 1024,
        allow_repr: bool = True,
    ) -> None:
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.max_int_digits = max_int_digits
        self.max_text_bytes = max_text_bytes
        self.allow_repr = allow_repr
        self.nodes = 0
        self.text = 0
        self.non_canonical = False

    def to_json(self, value: Any) -> str:
        """Return the tagged JSON text for ``value``."""
        parts: list[str] = []
        self._emit(value, parts, 0)
        return _str_join("", parts)

    def _count(self, size: int) -> None:
        self.nodes += 1
        self.text += size
        if self.nodes > self.max_nodes:
            raise EncodeLimitError(f"more than {self.max_nodes} nodes")
        if self.text > self.max_text_bytes:
            raise EncodeLimitError(f"more than {self.max_text_bytes} bytes of text")

    def _leaf(self, tag: str, text: str, parts: list[str]) -> None:
        self._count(_len(text))
        _list_append(parts, '["' + tag + '",' + _escape(text) + "]")

    def _emit(self, value: Any, parts: list[str], depth: int) -> None:
        if depth > self.max_depth:
            raise EncodeLimitError(f"deeper than {self.max_depth}")
        kind = _type(value)
        if value is None:
            self._count(4)
            _list_append(parts, "null")
        elif kind is bool:
            self._count(5)
            _list_append(parts, "true" if value is True else "false")
        elif kind is int:
            if value.bit_length() > self.max_int_digits * 3.33:
                raise EncodeLimitError(f"integer longer than {self.max_int_digits} digits")
            self._leaf("i", _int_repr(value), parts)
        elif kind is float:
            self._leaf("f", _float_repr(value), parts)
        elif kind is str:
            self._leaf("s", value, parts)
        elif kind is bytes:
            self._leaf("b", _bytes_decode(_b64(value), "ascii"), parts)
        elif kind in _SEQUENCE_TAGS:
            self._count(2)
            _list_append(parts, '["' + _SEQUENCE_TAGS[kind] + '",[')
            first = True
            for item in value:
                if not first:
                    _list_append(parts, ",")
                first = False
                self._emit(item, parts, depth + 1)
            _list_append(parts, "]]")
        elif kind is dict:
            self._count(2)
            _list_append(parts, '["d",[')
            first = True
            for key, item in _dict_items(value):
                _list_append(parts, "[" if first else ",[")
                first = False
                self._emit(key, parts, depth + 1)
                _list_append(parts, ",")
                self._emit(item, parts, depth + 1)
                _list_append(parts, "]")
            _list_append(parts, "]]")
        else:
            self._emit_repr(value, parts)

    def _emit_repr(self, value: Any, parts: list[str]) -> None:
        if not self.allow_repr:
            raise EncodeLimitError("value of a non-canonical type")
        self.non_canonical = True
        text = _repr(value)
        if _type(text) is not str:
            raise EncodeLimitError("__repr__ did not return a str")
        self._leaf("r", text, parts)
