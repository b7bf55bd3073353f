"""Literal deduction answers are read on the trusted side (``sandboxd.azr.literal_answers``), and judged
exactly as the sandbox would judge them: every case here gets the same verdict from the default policy
(literal reader) and from ``sandboxed-answers`` (the same policy with ``azr.literal_answers: false``)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from sandboxd.api.app import create_app
from sandboxd.azr import check as check_module
from sandboxd.azr import literal_answers
from sandboxd.azr.memo import TextMemo
from sandboxd.policy import load_policies
from sandboxd.settings import BUILTIN_POLICIES, Settings
from sandboxd.testing import FakeBackend

DEFAULT = load_policies(BUILTIN_POLICIES)["default"]


def read(text: str, imports: list[str] | None = None, policy: Any = DEFAULT) -> Any:
    return literal_answers.read(text, imports or [], policy, TextMemo())


def test_a_literal_is_read_as_the_child_reports_it() -> None:
    outcome = read("[1, 'a', (2.5, None), {3: b'x'}, {True}]")
    assert outcome is not None
    assert outcome.ok
    assert outcome.canonical
    assert outcome.value == [1, "a", (2.5, None), {3: b"x"}, {True}]
    assert outcome.repr_text == "[1, 'a', (2.5, None), {3: b'x'}, {True}]"
    assert outcome.tagged == [
        "l",
        [
            ["i", "1"],
            ["s", "a"],
            ["t", [["f", "2.5"], None]],
            ["d", [[["i", "3"], ["b", "eA=="]]]],
            ["S", [True]],
        ],
    ]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("sorted([2, 1])", id="a-call"),
        pytest.param("[1] * 3", id="arithmetic"),
        pytest.param("float('nan')", id="nan"),
        pytest.param("x", id="a-name"),
        pytest.param("1j", id="complex"),
        pytest.param("...", id="ellipsis"),
        pytest.param("{[1]: 2}", id="unhashable-key"),
        pytest.param("[" * 70 + "]" * 70, id="deeper-than-the-encoder-allows"),
        pytest.param("1" * 4100, id="more-digits-than-the-encoder-allows"),
        pytest.param("-True", id="sign-on-a-bool"),
    ],
)
def test_anything_else_goes_to_the_sandbox(text: str) -> None:
    assert read(text) is None


@pytest.mark.parametrize(
    ("imports", "read_here"),
    [
        pytest.param([], True, id="none"),
        pytest.param(["import re", "import math"], True, id="preloaded"),
        pytest.param(["import numpy"], False, id="not-preloaded"),
        pytest.param(["import no_such_module"], False, id="would-fail"),
        pytest.param(["import re as set"], False, id="alias"),
        pytest.param(["from collections import Counter"], False, id="from-import"),
        pytest.param(["import re; x = 1"], False, id="a-statement"),
    ],
)
def test_only_imports_that_cannot_matter_allow_reading(imports: list[str], read_here: bool) -> None:
    assert (read("set()", imports) is not None) is read_here


def test_the_policy_can_turn_it_off() -> None:
    off = DEFAULT.model_copy(update={"azr": DEFAULT.azr.model_copy(update={"literal_answers": False})})
    assert read("[1]") is not None
    assert read("[1]", policy=off) is None


def record(value: str) -> str:
    """AZR's record of a long output (200 characters, ``...``, 200)."""
    return value[:200] + "..." + value[-200:]


LONG = "'" + "y" * 500 + "'"
CASES = [
    pytest.param("[1, 2]", "[1, 2]", [], "literal", id="equal"),
    pytest.param("[1, 2]", "[2, 1]", [], "literal", id="different"),
    pytest.param("{1, True}", "{1}", [], "literal", id="set-collapses-true-into-1"),
    pytest.param("{1: 'a', True: 'b'}", "{1: 'b'}", [], "literal", id="dict-last-value-wins"),
    pytest.param("True", "1", [], "literal", id="bool-for-int"),
    pytest.param("(1,)", "[1]", [], "literal", id="tuple-for-list"),
    pytest.param("-0.0", "0.0", [], "literal", id="negative-zero"),
    pytest.param("1e400", "float('inf')", [], "literal", id="infinity-against-an-expression"),
    pytest.param("'\\ud800'", "'\\ud800'", [], "literal", id="lone-surrogate"),
    pytest.param("b'\\xff\\x00'", "b'\\xff\\x00'", [], "literal", id="bytes"),
    pytest.param("'a' 'b'", "'ab'", [], "literal", id="implicit-concatenation"),
    pytest.param("frozenset()", "set()", [], "literal", id="empty-frozenset-for-set"),
    pytest.param("[" * 60 + "]" * 60, "[" * 60 + "]" * 60, [], "literal", id="60-deep"),
    pytest.param("[" * 70 + "]" * 70, "[" * 70 + "]" * 70, [], "sandbox", id="70-deep"),
    pytest.param("9" * 3999, "9" * 3999, [], "literal", id="3999-digits"),
    pytest.param("9" * 4100, "9" * 4100, [], "sandbox", id="4100-digits"),
    pytest.param("[1]", "[1]", ["import math"], "literal", id="preloaded-import"),
    pytest.param("[1]", "[1]", ["import no_such_module"], "sandbox", id="import-fails-in-the-sandbox"),
    pytest.param(LONG, record(LONG), [], "sandbox", id="truncated-record"),
    pytest.param("sorted([2, 1])", "[1, 2]", [], "sandbox", id="not-a-literal"),
]


def check(client: httpx.Client, answer: str, expected: str, imports: list[str], policy: str) -> Any:
    body = {
        "policy": policy,
        "answers": [
            {"task_type": "deduction", "answer": answer, "expected_output": expected, "imports": imports}
        ],
    }
    response = client.post("/v1/azr/check", json=body)
    assert response.status_code == 200, response.text
    return response.json()["results"][0]


@pytest.mark.docker
@pytest.mark.parametrize(("answer", "expected", "imports", "where"), CASES)
def test_same_verdict_as_the_sandbox(
    client: httpx.Client, answer: str, expected: str, imports: list[str], where: str
) -> None:
    here = check(client, answer, expected, imports, "default")
    there = check(client, answer, expected, imports, "sandboxed-answers")
    assert here["evaluated_in"] == where, here
    assert there["evaluated_in"] == "sandbox", there
    keys = ("correct", "reward", "reason", "compared_by")
    assert {k: here[k] for k in keys} == {k: there[k] for k in keys}, (here, there)
    if where == "literal":
        assert here["usage"]["cpu_time_seconds"] == 0  # nothing ran
        assert there["usage"]["wall_time_seconds"] > 0


def test_a_literal_is_judged_while_the_runs_go(monkeypatch: pytest.MonkeyPatch) -> None:
    """A literal answer whose expected output is read here too is compared when it is planned, before any
    run's result comes back, not after the request's last run (where the response would wait on it)."""
    backend = FakeBackend()
    app = create_app(Settings(instance="literal-early"), backend=backend)
    results_read_at_compare: list[int] = []
    original = check_module.compare

    def spy(*args: Any) -> Any:
        results_read_at_compare.append(sum(kind == "result" for kind, _ in backend.log))
        return original(*args)

    monkeypatch.setattr(check_module, "compare", spy)
    needs_run = {
        "task_type": "abduction",
        "program": "def f(x):\n    return x",
        "expected_output": "1",
        "answer": "1",
    }
    literal = {"task_type": "deduction", "input": "1", "expected_output": "[1, 2]", "answer": "[1, 2]"}

    async def main() -> httpx.Response:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://sandboxd.test") as http:
                for _ in range(200):  # the pool warms up in the background after start-up
                    if (await http.get("/readyz")).status_code == 200:
                        break
                    await asyncio.sleep(0.05)
                return await http.post("/v1/azr/check", json={"answers": [needs_run, literal]})

    response = asyncio.run(main())
    assert response.status_code == 200, response.text
    ran, read_here = response.json()["results"]
    assert (read_here["correct"], read_here["evaluated_in"]) == (True, "literal")
    assert ran["evaluated_in"] != "literal"
    assert sum(kind == "result" for kind, _ in backend.log) == 1  # the abduction's run came back
    assert results_read_at_compare[0] == 0  # ...after the literal was compared
