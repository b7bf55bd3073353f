"""The cache of texts' checks and bytecode kept across requests (sandboxd/textcache.py).

Unit tests of its bound and of what it shares (outcomes and code objects, never literal values), then the
real daemon: a task's texts checked by ``/v1/azr/validate`` are found again by ``/v1/azr/check``, and a
text rejected once is rejected the same way the next time.
"""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from sandboxd import bytecode
from sandboxd.azr import memo as memo_module
from sandboxd.azr.equality import comparison_key
from sandboxd.azr.literal import NotLiteral
from sandboxd.azr.memo import TextMemo
from sandboxd.azr.texts import TextRejected, check_arguments
from sandboxd.bytecode import Compiler
from sandboxd.textcache import ENTRY_BYTES, MISSING, TextCache


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts ``parse_literal`` is called with from here on, in order."""
    parsed: list[str] = []
    real = memo_module.parse_literal
    monkeypatch.setattr(memo_module, "parse_literal", lambda text: parsed.append(text) or real(text))
    return parsed


def test_the_least_recently_used_entries_go_first_and_the_bound_holds() -> None:
    cache = TextCache(max_bytes=3 * (ENTRY_BYTES + 10))
    for name in ("a", "b", "c"):
        cache.put(name, name.upper(), 10)
    assert cache.get("a") == "A"  # now the most recently used
    cache.put("d", "D", 10)
    assert cache.get("b") is MISSING  # the least recently used went
    assert [cache.get(name) for name in ("a", "c", "d")] == ["A", "C", "D"]
    assert len(cache) == 3
    assert cache.bytes <= cache.max_bytes


def test_an_entry_larger_than_the_bound_is_not_kept_and_zero_keeps_nothing() -> None:
    cache = TextCache(max_bytes=ENTRY_BYTES + 100)
    cache.put("small", 1, 50)
    cache.put("huge", 2, 10_000)
    assert cache.get("huge") is MISSING
    assert cache.get("small") == 1
    nothing = TextCache(max_bytes=0)
    nothing.put("x", 1, 0)
    assert len(nothing) == 0
    assert nothing.get("x") is MISSING


def test_replacing_a_key_counts_its_bytes_once() -> None:
    cache = TextCache(max_bytes=10_000)
    cache.put("k", 1, 100)
    cache.put("k", 2, 300)
    assert cache.get("k") == 2
    assert cache.bytes == ENTRY_BYTES + 300


def test_counts_are_taken_once() -> None:
    cache = TextCache(max_bytes=10_000)
    cache.put("k", 1, 1)
    cache.get("k"), cache.get("k"), cache.get("other")
    assert cache.take_counts() == (2, 1)
    assert cache.take_counts() == (0, 0)


def test_a_check_runs_once_across_requests_and_rejects_the_same_way() -> None:
    calls: list[str] = []

    def strict(text: str) -> None:
        calls.append(text)
        if "bad" in text:
            raise TextRejected(f"rejected {text}")

    shared = TextCache(max_bytes=1 << 20)
    first, second = TextMemo(shared), TextMemo(shared)
    first.check(strict, "good")
    with pytest.raises(TextRejected, match="rejected bad one"):
        first.check(strict, "bad one")
    second.check(strict, "good")
    with pytest.raises(TextRejected, match="rejected bad one"):
        second.check(strict, "bad one")
    assert calls == ["good", "bad one"]


def test_literal_values_are_never_shared_across_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether a text is a literal is kept; the value is built per request, so a request that changed
    one (nothing should) could not reach the next."""
    shared = TextCache(max_bytes=1 << 20)
    first = TextMemo(shared)
    value = first.literal("[1, [2, 3]]")
    assert first.is_literal("[1, [2, 3]]")
    assert not first.is_literal("x + 1")
    parsed = _count_parses(monkeypatch)
    second = TextMemo(shared)
    assert second.is_literal("[1, [2, 3]]")
    assert not second.is_literal("x + 1")
    assert parsed == []  # known without a parse
    again = second.literal("[1, [2, 3]]")
    assert parsed == ["[1, [2, 3]]"]  # built again for this request
    assert again == value
    assert again is not value
    assert again[1] is not value[1]


def test_code_objects_are_shared_and_a_hit_spends_no_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[str] = []
    real = bytecode.precompiled
    monkeypatch.setattr(bytecode, "precompiled", lambda *args: compiled.append(args[0]) or real(*args))
    shared = TextCache(max_bytes=1 << 20)
    code = Compiler(10, shared)("f(1, [2])", "<input>", "eval")
    assert code is not None
    assert compiled == ["f(1, [2])"]
    broke = Compiler(0, shared)  # no budget: it compiles nothing itself
    assert broke("f(1, [2])", "<input>", "eval") is code
    assert broke("f(2)", "<input>", "eval") is None
    assert compiled == ["f(1, [2])"]
    # The key is the text with its name and mode: another mode is another entry.
    assert Compiler(10, shared)("f(1, [2])", "<input>", "exec") is not code


def test_a_real_argument_check_is_kept_with_its_message() -> None:
    shared = TextCache(max_bytes=1 << 20)
    messages = []
    for memo in (TextMemo(shared), TextMemo(shared)):
        with pytest.raises(TextRejected) as caught:
            memo.check(check_arguments, "x := 1")
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    assert shared.hits == 1


def _lookups(client: httpx.Client) -> dict[str, float]:
    text = client.get("/metrics").text
    found = re.findall(r'^sandboxd_text_cache_lookups_total\{result="(hit|miss)"\} (\S+)$', text, re.M)
    return {result: float(value) for result, value in found}


def test_check_finds_the_texts_that_validate_checked_and_compiled(client: httpx.Client) -> None:
    """Real daemon: an abduction answer on a task validated just before takes the program's check and
    bytecode from the cache (the counters say so), and is judged exactly as without it."""
    marker = uuid.uuid4().hex  # texts no other test sent
    source = f"def f(x):\n    return [x, {marker!r}]\n"
    task = {"task_type": "abduction", "program": source, "imports": [], "inputs": ["7"]}
    validated = client.post("/v1/azr/validate", json={"tasks": [task]}).json()["results"][0]
    assert validated["valid"] is True
    before = _lookups(client)
    answer = {
        "task_type": "abduction",
        "program": source,
        "answer": "7",
        "expected_output": f"[7, {marker!r}]",
    }
    wrong = {**answer, "answer": "8"}
    results = client.post("/v1/azr/check", json={"answers": [answer, wrong]}).json()["results"]
    assert [r["correct"] for r in results] == [True, False]
    after = _lookups(client)
    assert after.get("hit", 0) - before.get("hit", 0) >= 2  # the program's check and its bytecode


def test_a_rejected_text_is_rejected_again_from_the_cache(client: httpx.Client) -> None:
    bad = {"task_type": "deduction", "program": "def f(x):\n    return x\n", "imports": []}
    bad["inputs"] = [f"__import__('os').system('true'), {uuid.uuid4().int}"]
    first, second = (
        client.post("/v1/azr/validate", json={"tasks": [bad]}).json()["results"][0] for _ in range(2)
    )
    assert first["valid"] is False
    assert first["reason"] == "bad_arguments"
    assert (second["valid"], second["reason"], second["detail"]) == (False, "bad_arguments", first["detail"])


def test_expected_outputs_compare_by_a_key_kept_across_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison key of a literal (immutable) is kept; a later request compares against it without
    a parse, under the same rules (1 equals 1.0, bool is not int)."""
    shared = TextCache(max_bytes=1 << 20)
    first = TextMemo(shared)
    assert first.literal_key("[1, (2.0, 'a')]") == comparison_key([1, (2.0, "a")])
    parsed = _count_parses(monkeypatch)
    second = TextMemo(shared)
    assert second.literal_key("[1, (2.0, 'a')]") == comparison_key([1.0, (2, "a")])
    assert parsed == []
    assert second.literal_key("True") != comparison_key(1)
    with pytest.raises(NotLiteral):
        second.literal_key("x + 1")
