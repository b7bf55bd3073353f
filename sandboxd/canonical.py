"""Trusted-side decoder for the canonical value encoding (inverse of ``runner/encode.py``).

The input is model-influenced data, so the decoder accepts only the documented tags, checks every
shape, and caps depth and size. It never evaluates anything.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

_FLOAT = re.compile(r"^-?(?:inf|nan|\d+\.\d+(?:e[+-]\d+)?|\d+e[+-]\d+)$")
_INT = re.compile(r"^-?\d+$")
_CONTAINERS: dict[str, type] = {"l": list, "t": tuple, "S": set, "F": frozenset}
_TEXT_TAGS = frozenset({"s", "i", "f", "r", "b"})


class DecodeError(ValueError):
    """The tagged value is malformed."""


@dataclass(frozen=True)
class NonCanonical:
    """A value outside the canonical types, known only by the repr taken inside the sandbox."""

    repr: str


def decode(tagged: Any, *, max_depth: int = 64, max_int_digits: int = 4300) -> Any:
    """Turn one tagged value into a Python value; raises :class:`DecodeError`."""
    return _decode(tagged, 0, max_depth, max_int_digits)


def _decode(node: Any, depth: int, max_depth: int, max_digits: int) -> Any:
    # The tags are tried in the order a frame holds them most; ``int`` takes plain ASCII digits without
    # the pattern (the same strings the pattern accepts, and the same value). A frame carries thousands.
    if depth > max_depth:
        raise DecodeError(f"deeper than {max_depth}")
    if node is None or node is True or node is False:
        return node
    if not (isinstance(node, list) and len(node) == 2 and isinstance(node[0], str)):
        raise DecodeError("not a tagged value")
    tag, body = node
    if tag in _TEXT_TAGS:
        if not isinstance(body, str):
            raise DecodeError(f"tag {tag!r} needs a string")
        if tag == "s":
            return body
        if tag == "i":
            if len(body) > max_digits + 1 or not ((body.isascii() and body.isdigit()) or _INT.match(body)):
                raise DecodeError("bad integer")
            return int(body)
        if tag == "f":
            if not _FLOAT.match(body):
                raise DecodeError("bad float")
            return float(body)
        if tag == "r":
            return NonCanonical(body)
        try:
            return base64.b64decode(body, validate=True)
        except binascii.Error as exc:
            raise DecodeError("bad bytes") from exc
    if not isinstance(body, list):
        raise DecodeError(f"tag {tag!r} needs a list")
    container = _CONTAINERS.get(tag)
    if container is not None:
        depth += 1
        items = [_decode(item, depth, max_depth, max_digits) for item in body]
        if container is list:
            return items
        try:
            return container(items)
        except TypeError as exc:
            raise DecodeError("unhashable set element") from exc
    if tag == "d":
        result = {}
        for pair in body:
            if not (isinstance(pair, list) and len(pair) == 2):
                raise DecodeError("bad dict item")
            key = _decode(pair[0], depth + 1, max_depth, max_digits)
            try:
                result[key] = _decode(pair[1], depth + 1, max_depth, max_digits)
            except TypeError as exc:
                raise DecodeError("unhashable dict key") from exc
        return result
    raise DecodeError(f"unknown tag {tag!r}")
