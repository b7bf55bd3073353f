"""Inputs for the induction hard-coding detector, generated on the trusted side as **data**.

An induction answer that only memorises the shown pairs (a lookup table, a chain of ``if x == 3``) passes
the normal check. The detector runs the answer and the proposer's reference program on fresh inputs, inside
the sandbox, and compares their values here. This module only makes the inputs: Hypothesis strategies are
derived from the *types* of the shown inputs (integers near their range, strings over their alphabet,
lists/tuples/dicts/sets of what they hold), and examples are drawn with a fixed seed (``derandomize``), so
the same task always gets the same inputs. Nothing here runs model code.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import string
import tempfile
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.strategies import SearchStrategy

from sandboxd.azr.literal import NotLiteral, parse_literal

RULE_ID = "semantic.induction-hardcoding"
PACK = "semantic"
MAX_ARGUMENT_CHARS = 2000  # one generated argument text; longer draws are dropped
_MAX_DEPTH = 4


def example_arguments(texts: Sequence[str]) -> list[tuple[Any, ...]] | None:
    """The shown inputs as argument tuples, or None when one is not a plain literal (``x=1``, a call)."""
    out: list[tuple[Any, ...]] = []
    for text in texts:
        try:
            value = parse_literal(f"({text},)")
        except NotLiteral:
            return None
        if not isinstance(value, tuple):
            return None
        out.append(value)
    return out


def strategy_for(samples: Sequence[Any], depth: int = 0) -> SearchStrategy[Any]:
    """A strategy for values like ``samples`` (same types, similar sizes and ranges)."""
    if depth >= _MAX_DEPTH:
        return st.sampled_from(list(samples))
    by_type: dict[type, list[Any]] = {}
    for value in samples:
        by_type.setdefault(type(value), []).append(value)
    choices = [_strategy(kind, values, depth) for kind, values in by_type.items()]
    return st.one_of(choices) if len(choices) > 1 else choices[0]


def _strategy(kind: type, values: list[Any], depth: int) -> SearchStrategy[Any]:
    if kind is bool:
        return st.booleans()
    if kind is int:
        low, high = min(values), max(values)
        span = max(10, high - low)
        return st.integers(low - span, high + span)
    if kind is float:
        low, high = min(values), max(values)
        span = max(10.0, high - low)
        return st.floats(low - span, high + span, allow_nan=False, allow_infinity=False)
    if kind is str:
        return st.text(alphabet=_alphabet(values), max_size=max(len(v) for v in values) + 3)
    if kind is type(None):
        return st.none()
    if kind in (list, set, frozenset):
        items = [item for value in values for item in value]
        element = strategy_for(items, depth + 1) if items else st.integers(-10, 10)
        size = max(len(v) for v in values) + 3
        if kind is list:
            return st.lists(element, max_size=size)
        hashable = element.filter(_hashable)
        return st.sets(hashable, max_size=size) if kind is set else st.frozensets(hashable, max_size=size)
    if kind is tuple:
        lengths = {len(v) for v in values}
        if len(lengths) == 1 and next(iter(lengths)) > 0:
            width = next(iter(lengths))
            return st.tuples(*(strategy_for([v[i] for v in values], depth + 1) for i in range(width)))
        items = [item for value in values for item in value]
        element = strategy_for(items, depth + 1) if items else st.integers(-10, 10)
        return st.lists(element, max_size=max(len(v) for v in values) + 3).map(tuple)
    if kind is dict:
        keys = [k for value in values for k in value]
        items = [v for value in values for v in value.values()]
        key = strategy_for(keys, depth + 1).filter(_hashable) if keys else st.text(max_size=4)
        item = strategy_for(items, depth + 1) if items else st.integers(-10, 10)
        return st.dictionaries(key, item, max_size=max(len(v) for v in values) + 2)
    return st.sampled_from(values)  # any other literal type: only the shown values


def _alphabet(values: list[str]) -> str:
    chars = {c for v in values for c in v}
    if any(c.isalpha() for c in chars):
        chars |= set(string.ascii_lowercase)
    if any(c.isdigit() for c in chars):
        chars |= set(string.digits)
    return "".join(sorted(chars)) or string.ascii_lowercase


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


@functools.cache
def _private_storage() -> str:
    """Hypothesis caches (its charmap, constants it reads from local modules) go to a private temporary
    directory instead of ``./.hypothesis`` in the daemon's working directory. Set once, on first use."""
    home = tempfile.mkdtemp(prefix="sandboxd-hypothesis-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)  # a cache: never outlives the process
    set_hypothesis_home_dir(home)
    return home


def generate(examples: Sequence[tuple[Any, ...]], count: int) -> list[str]:
    """Up to ``count`` new argument texts (``repr`` of each argument, comma-joined), never a shown one."""
    if not examples or len({len(e) for e in examples}) != 1:
        return []
    _private_storage()
    width = len(examples[0])
    strategy = st.tuples(*(strategy_for([e[i] for e in examples]) for i in range(width)))
    shown = {_text(e) for e in examples}
    drawn: list[str] = []

    @settings(
        max_examples=count * 3,
        database=None,
        derandomize=True,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )
    @given(strategy)
    def collect(arguments: tuple[Any, ...]) -> None:
        text = _text(arguments)
        if len(drawn) < count and text not in shown and text not in drawn and len(text) <= MAX_ARGUMENT_CHARS:
            drawn.append(text)

    collect()
    return drawn


def _text(arguments: tuple[Any, ...]) -> str:
    return ", ".join(repr(value) for value in arguments)
