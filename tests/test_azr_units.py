"""Pure unit tests of the AZR trusted side: text checks, equality rules and AZR's truncation (no Docker)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytest

from sandboxd.azr.equality import comparison_key, contains_non_canonical, equal
from sandboxd.azr.literal import NotLiteral, parse_literal
from sandboxd.azr.memo import TextMemo
from sandboxd.azr.texts import (
    TextRejected,
    check_arguments,
    check_expression,
    check_imports,
    check_program,
    parse_import_list,
)
from sandboxd.azr.validate import AZR_TRUNCATE_CHARS, azr_truncate
from sandboxd.canonical import NonCanonical

# -- check_arguments -------------------------------------------------------------------------------------
ACCEPTED_ARGUMENTS = [
    pytest.param("1", id="int"),
    pytest.param("", id="no-arguments"),
    pytest.param("'John', {'age': 20}", id="str-and-dict"),
    pytest.param('"Hello world"', id="double-quoted"),
    pytest.param("x=1, y=[1, 2]", id="keywords"),
    pytest.param("1, 2,", id="trailing-comma"),
    pytest.param("-1.5e3, None, True, b'ab'", id="literals"),
    pytest.param("[i * 2 for i in range(3)]", id="comprehension"),
    pytest.param("lambda x=1: x * 2", id="lambda"),
    pytest.param("f(1234)", id="calls-f-itself"),
    pytest.param("set(), dict(a=1), (1,)", id="builtin-constructors"),
    pytest.param("[\n    1,\n    2,\n]", id="multi-line"),
    pytest.param("'''a\nb'''", id="triple-quoted-multi-line"),
    pytest.param("'1) or True or (1'", id="injection-inside-a-str"),
    pytest.param("'_private', 'x__y'", id="underscores-inside-str"),
    pytest.param("'é'", id="non-ascii-str"),
    pytest.param("['😁', '👍']", id="emoji"),
    pytest.param("'é', x=[1,\n 'ü']", id="non-ascii-multi-line"),
    pytest.param("'a\\d', '\\$'", id="invalid-escapes"),
    pytest.param("[8 for _ in range(10)]", id="throwaway-name"),
    pytest.param("lambda _: 1", id="throwaway-parameter"),
    pytest.param("_secret", id="single-underscore-name"),
    pytest.param("['__', '1']", id="dunder-like-data"),
    pytest.param("'__class__', b'__init__'", id="dunder-string-data"),
]

REJECTED_ARGUMENTS = [
    pytest.param("1) or True or (1", id="close-paren-or-true"),
    pytest.param("1), f(2", id="second-call"),
    pytest.param("1)(", id="call-the-result"),
    pytest.param("1)[0", id="subscript-the-result"),
    pytest.param("1).real + (1", id="attribute-of-the-result"),
    pytest.param("1) if True else (1", id="conditional-around-the-call"),
    pytest.param("1) #", id="comment-eats-the-paren"),
    pytest.param("1)\nimport os\nf(1", id="newline-statement"),
    pytest.param("1); import os; (1", id="semicolon-statement"),
    pytest.param("(f := 1)", id="walrus"),
    pytest.param("*[1, 2]", id="starred"),
    pytest.param("**{'x': 1}", id="double-star"),
    pytest.param("(yield)", id="yield"),
    pytest.param("__import__('os')", id="dunder-import"),
    pytest.param("__secret", id="dunder-name"),
    pytest.param("__builtins__", id="dunder-builtins"),
    pytest.param("[].__class__", id="dunder-attribute"),
    pytest.param("f._cache", id="private-attribute"),
    pytest.param("'é'.__class__", id="dunder-attribute-after-non-ascii"),
    pytest.param("'é') or True or ('é'", id="injection-after-non-ascii"),
    pytest.param("'é')\nimport os\nf('é'", id="newline-statement-after-non-ascii"),
    pytest.param("globals()", id="globals"),
    pytest.param("vars()", id="vars"),
    pytest.param("eval('1')", id="eval"),
    pytest.param("exec('x = 1')", id="exec"),
    pytest.param("getattr(1, 'real')", id="getattr"),
    pytest.param("type('A', (), {})", id="type"),
    pytest.param("open('/etc/passwd')", id="open"),
    pytest.param("print(1)", id="print"),
    pytest.param("exit(0)", id="exit"),
    pytest.param("breakpoint()", id="breakpoint"),
    pytest.param("(lambda g=globals(): g)()", id="lambda-default-globals"),
    pytest.param("[" * 1000 + "]" * 1000, id="deeply-nested"),
    pytest.param("[" + "1, " * 25_000 + "]", id="too-many-nodes"),
    pytest.param("1 +", id="syntax-error"),
    pytest.param("\x00", id="nul-byte"),
]


@pytest.mark.parametrize("text", ACCEPTED_ARGUMENTS)
def test_check_arguments_accepts_plain_arguments(text: str) -> None:
    """Plain argument texts, however they are written, are accepted."""
    check_arguments(text)


@pytest.mark.parametrize("text", REJECTED_ARGUMENTS)
def test_check_arguments_rejects(text: str) -> None:
    """Text that is not exactly the plain arguments of one call is rejected before anything runs."""
    with pytest.raises(TextRejected):
        check_arguments(text)


def test_text_checks_ignore_warning_filters() -> None:
    """An invalid escape such as '\\d' (AZR data has it) is accepted even when warnings are errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_arguments("'a\\d'")
        check_expression("'a\\d'")
        check_program("def f(x):\n    return '\\d' in x")
        assert parse_literal("['\\$']") == ["\\$"]


# -- check_expression, check_imports, check_program, parse_import_list --------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "[1, 2]",
        "{'a': (1, 2.5)}",
        "float('nan')",
        "-inf",
        "Counter({'a': 1})",
        "'x' * 3",
        "None",
        "'______ BCD ______'",
        "'__class__'",
        "[_ for _ in 'ab']",
        "'é\\d'",
    ],
)
def test_check_expression_accepts(text: str) -> None:
    """Plain expressions are accepted (whether their names exist is found out in the sandbox)."""
    check_expression(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "1; 2",
        "import os",
        "x = 1",
        "(x := 1)",
        "__import__('os')",
        "__builtins__",
        "().__class__",
        "x._private",
        "print(1)",
        "[1, 2",
    ],
)
def test_check_expression_rejects(text: str) -> None:
    """Statements, empty text, walrus and forbidden names are not expressions an answer may use."""
    with pytest.raises(TextRejected):
        check_expression(text)


# -- parse_literal: expected outputs read on the trusted side ---------------------------------------------
def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("[1, 2]", [1, 2]),
        ("  {'a': (1, 'x')}\n", {"a": (1, "x")}),
        ("-1.5e3", -1500.0),
        ("+3", 3),
        ("(True, None, b'\\x00')", (True, None, b"\x00")),
        ("{1, 2}", {1, 2}),
        ("{1.0: 'a', 1: 'b'}", {1.0: "b"}),
        ("set()", set()),
        ("frozenset()", frozenset()),
        ("[list(), tuple(), dict()]", [[], (), {}]),
        ("'é😁'", "é😁"),
        ("'a\\d'", "a\\d"),
        ("'__class__'", "__class__"),
        ("[" * 100 + "]" * 100, nested(99)),
        ("9" * 4000, int("9" * 4000)),
    ],
)
def test_parse_literal(text: str, value: Any) -> None:
    """Literals become values without evaluation, with their exact types."""
    parsed = parse_literal(text)
    assert parsed == value
    assert type(parsed) is type(value)
    assert repr(parsed) == repr(value)


@pytest.mark.parametrize(
    "text",
    [
        "Counter({'a': 1})",
        "float('nan')",
        "inf",
        "-inf",
        "[1] * 3",
        "1 + 2",
        "1j",
        "...",
        "-True",
        "-'a'",
        "set([1])",
        "{**{}}",
        "{[1]: 2}",
        "{[1]}",
        "x",
        "__import__('os')",
        "[" * 102 + "]" * 102,
        "[" + "0, " * 200_001 + "]",
        "9" * 4100,
        "1 +",
        "",
    ],
)
def test_parse_literal_leaves_the_rest_to_the_sandbox(text: str) -> None:
    """Anything but a plain literal is NotLiteral (then checked as an expression and run in a sandbox)."""
    with pytest.raises(NotLiteral):
        parse_literal(text)


@pytest.mark.parametrize(
    ("lines", "ok"),
    [
        (["import math"], True),
        (["from collections import Counter, deque"], True),
        (["import numpy as np", "import re"], True),
        ([], True),
        (["import os; os.system('id')"], False),
        (["print(1)"], False),
        ([""], False),
        (["import"], False),
    ],
)
def test_check_imports(lines: list[str], ok: bool) -> None:
    """Import lines hold import statements and nothing else."""
    if ok:
        check_imports(lines)
    else:
        with pytest.raises(TextRejected):
            check_imports(lines)


@pytest.mark.parametrize(
    ("source", "ok"),
    [
        ("def f(x):\n    return x", True),
        ("f = lambda x: x", True),
        ("class f:\n    pass", True),
        ("import math\ndef f(a, b=2):\n    return math.gcd(a, b)", True),
        ("def g(x):\n    return x", False),
        ("def f(x) return x", False),
        ("", False),
    ],
)
def test_check_program(source: str, ok: bool) -> None:
    """A program must parse and define f at module level."""
    if ok:
        check_program(source)
    else:
        with pytest.raises(TextRejected):
            check_program(source)


@pytest.mark.parametrize(
    ("value", "lines"),
    [
        ("['import math']", ["import math"]),
        ("['import heapq', 'import collections']", ["import heapq", "import collections"]),
        ("[]", []),
        ("", []),
        (["import re"], ["import re"]),
    ],
)
def test_parse_import_list(value: str | list[str], lines: list[str]) -> None:
    """AZR's string form of the import list is parsed, never evaluated."""
    assert parse_import_list(value) == lines


@pytest.mark.parametrize("value", ["[__import__('os')]", "['a'] + ['b']", "[1]", "'import os'", "[x]"])
def test_parse_import_list_rejects(value: str) -> None:
    """Anything but a literal list of strings is rejected."""
    with pytest.raises(TextRejected):
        parse_import_list(value)


# -- equality rules --------------------------------------------------------------------------------------
NAN = float("nan")
EQUALITY = [
    pytest.param(1, 1, True, id="int"),
    pytest.param(1, 1.0, True, id="int-float-numeric"),
    pytest.param(-0.0, 0, True, id="negative-zero"),
    pytest.param(0.1 + 0.2, 0.3, False, id="float-exact"),
    pytest.param(math.inf, math.inf, True, id="inf"),
    pytest.param(NAN, NAN, False, id="nan-not-itself"),
    pytest.param([NAN], [NAN], False, id="nan-inside-list"),
    pytest.param({"a": NAN}, {"a": NAN}, False, id="nan-inside-dict"),
    pytest.param(True, True, True, id="bool"),
    pytest.param(True, 1, False, id="bool-is-not-int"),
    pytest.param(False, 0, False, id="false-is-not-zero"),
    pytest.param(True, 1.0, False, id="bool-is-not-float"),
    pytest.param([True], [1], False, id="bool-in-list"),
    pytest.param({"a": True}, {"a": 1}, False, id="bool-in-dict-value"),
    pytest.param({True: "a"}, {1: "a"}, False, id="bool-as-dict-key"),
    pytest.param(frozenset({True}), frozenset({1}), False, id="bool-in-set"),
    pytest.param((1, 2), [1, 2], False, id="tuple-is-not-list"),
    pytest.param([1, (2, [3])], [1, (2, [3])], True, id="nested"),
    pytest.param([1, (2, [3])], [1, [2, [3]]], False, id="nested-tuple-vs-list"),
    pytest.param({1, 2}, frozenset({2, 1}), True, id="set-frozenset"),
    pytest.param({1, 2}, [1, 2], False, id="set-is-not-list"),
    pytest.param({"a": 1, "b": 2}, {"b": 2, "a": 1}, True, id="dict-order"),
    pytest.param({1.0: "a"}, {1: "a"}, True, id="dict-key-numeric"),
    pytest.param({"a": 1}, {"a": 1, "b": 2}, False, id="dict-extra-key"),
    pytest.param("ab", "ab", True, id="str"),
    pytest.param("ab", b"ab", False, id="str-is-not-bytes"),
    pytest.param("1", 1, False, id="str-is-not-int"),
    pytest.param(None, None, True, id="none"),
    pytest.param(None, 0, False, id="none-is-not-zero"),
    pytest.param(None, [], False, id="none-is-not-empty"),
    pytest.param([], (), False, id="empty-list-vs-tuple"),
    pytest.param(NonCanonical("P(1)"), NonCanonical("P(1)"), True, id="non-canonical-same-repr"),
    pytest.param(NonCanonical("P(1)"), NonCanonical("P(2)"), False, id="non-canonical-other-repr"),
    pytest.param(NonCanonical("1"), 1, False, id="non-canonical-vs-value"),
    pytest.param(NonCanonical("'a'"), "'a'", False, id="non-canonical-vs-its-repr-text"),
]


@pytest.mark.parametrize(("left", "right", "same"), EQUALITY)
def test_equality_rules(left: Any, right: Any, same: bool) -> None:
    """Decoded values compare by the documented rules, in both directions."""
    assert equal(left, right) is same
    assert equal(right, left) is same


@pytest.mark.parametrize(("left", "right", "same"), EQUALITY)
def test_comparison_key_agrees_with_equal(left: Any, right: Any, same: bool) -> None:
    """Equal values have equal keys, and keys are hashable, so values can be deduplicated."""
    assert (comparison_key(left) == comparison_key(right)) is same
    hash(comparison_key(left))


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ([1, "a", (2.0, None)], False),
        ({"a": {1, 2}}, False),
        (NonCanonical("x"), True),
        ([1, NonCanonical("x")], True),
        ({"a": (NonCanonical("x"),)}, True),
        (frozenset({NonCanonical("x")}), True),
    ],
)
def test_contains_non_canonical(value: Any, found: bool) -> None:
    """Non-canonical values are found at any depth, in keys and in values."""
    assert contains_non_canonical(value) is found


# -- AZR's truncation ------------------------------------------------------------------------------------
def azr_reference_truncate(text: str, max_length: int = 400) -> str:
    """AZR's own ``PythonExecutor.truncate``, as documented in its repository."""
    half = max_length // 2
    return text[:half] + "..." + text[-half:] if len(text) > max_length else text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "x",
        "a" * 400,
        "a" * 401,
        "x" * 200 + "MIDDLE" + "y" * 200,
        "'" + "é" * 1000 + "'",
        "".join(chr(32 + i % 90) for i in range(5000)),
    ],
)
def test_azr_truncate_matches_azr(text: str) -> None:
    """Truncation is AZR's: texts over 400 characters become the first 200, '...', the last 200."""
    assert azr_truncate(text) == azr_reference_truncate(text)
    assert len(azr_truncate(text)) == (len(text) if len(text) <= 400 else 403)


def test_azr_truncate_is_idempotent() -> None:
    """A truncated record truncates to itself, so records can be compared after truncating both sides."""
    once = azr_truncate("x" * 200 + "MIDDLE" + "y" * 200)
    assert once == "x" * 200 + "..." + "y" * 200
    assert azr_truncate(once) == once
    assert AZR_TRUNCATE_CHARS == 400


def test_text_memo_checks_each_text_once_and_repeats_its_result() -> None:
    calls: list[str] = []

    def counted(text: str) -> None:
        calls.append(text)
        check_arguments(text)

    memo = TextMemo()
    for _ in range(3):
        memo.check(counted, "1, [2, 3]")
        with pytest.raises(TextRejected, match="exactly the arguments of one call"):
            memo.check(counted, "1) or True or (1")
    assert calls == ["1, [2, 3]", "1) or True or (1"]
    # Another check of the same text is a different question: it runs.
    with pytest.raises(TextRejected, match="does not define f"):
        memo.check(check_program, "g = 1")
    memo.check(check_expression, "g")


def test_text_memo_parses_each_literal_once() -> None:
    memo = TextMemo()
    first = memo.literal("[1, {'a': (2, 3.5)}]")
    assert first == [1, {"a": (2, 3.5)}]
    assert memo.literal("[1, {'a': (2, 3.5)}]") is first
    for _ in range(2):  # a fresh exception each time, with the first one's reason
        with pytest.raises(NotLiteral, match="Call is not a literal"):
            memo.literal("Counter({'a': 1})")
    assert TextMemo().literal("[1, {'a': (2, 3.5)}]") is not first  # nothing outlives a request


def test_repr_fallback_is_found_anywhere_in_a_value_however_deep() -> None:
    """``CallOutcome.canonical`` walks the tagged value once, without recursion."""
    from sandboxd.azr.outcomes import CallOutcome  # noqa: PLC0415 - local to this test

    deep: list[object] = ["r", "<object>"]
    for _ in range(5000):  # deeper than the recursion limit
        deep = ["l", [["i", "1"], deep]]
    plain: list[object] = ["l", [["i", str(n)] for n in range(100)]]
    assert CallOutcome(ok=True, tagged=deep).canonical is False
    assert CallOutcome(ok=True, tagged=plain).canonical is True
    assert CallOutcome(ok=False, tagged=plain).canonical is False
    assert CallOutcome(ok=True, tagged=["s", "r"]).canonical is True  # a string "r" is not a repr tag
