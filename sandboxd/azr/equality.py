"""Equality of decoded canonical values, on the trusted side. The rules (docs/azr.md):

- **Exact builtin types only.** Model objects never reach this module; they arrive as
  :class:`~sandboxd.canonical.NonCanonical` and compare by repr, and only with each other.
- **bool is not int.** ``True`` does not equal ``1`` (a classic reward hack), at any depth.
- **Numbers** compare numerically: ``1 == 1.0``, as in Python and AZR.
- **NaN equals nothing**, itself included, as in Python. A NaN answer is never correct.
- **tuple and list differ**; ``set`` and ``frozenset`` compare as sets; dicts ignore insertion order.
- **str and bytes** compare exactly.
"""

from __future__ import annotations

import math
from typing import Any

from sandboxd.canonical import NonCanonical

_SETS = (set, frozenset)


def contains_non_canonical(value: Any) -> bool:
    if type(value) is NonCanonical:
        return True
    if type(value) in (list, tuple, set, frozenset):
        return any(contains_non_canonical(item) for item in value)
    if type(value) is dict:
        return any(contains_non_canonical(k) or contains_non_canonical(v) for k, v in value.items())
    return False


def comparison_key(value: Any) -> Any:
    """A hashable key such that two values are equal under the rules exactly when their keys are."""
    kind = type(value)
    if kind is bool:
        return ("bool", value)
    if kind is float and math.isnan(value):  # NaN: a fresh object, so it equals nothing
        return ("nan", object())
    if kind in (int, float):
        return ("number", value)
    if kind is NonCanonical:
        return ("repr", value.repr)
    if kind in (list, tuple):
        return (kind.__name__, tuple(comparison_key(item) for item in value))
    if kind in _SETS:
        return ("set", frozenset(comparison_key(item) for item in value))
    if kind is dict:
        return ("dict", frozenset((comparison_key(k), comparison_key(v)) for k, v in value.items()))
    return (kind.__name__, value)  # str, bytes, None


def equal(left: Any, right: Any) -> bool:
    """Equality of two decoded canonical values under the rules above."""
    return bool(comparison_key(left) == comparison_key(right))
