"""Reward hacking against ``/v1/azr``: every attack is wrong or invalid, with exactly its expected reason.

Each row is one attack a policy model could find: an answer (or a proposed task) paired with the
reason the service must give. None may ever be ``correct`` (or a ``valid`` task whose output is
canonical). The comparison happens on the trusted side on canonical values, so objects that lie in
``__eq__``, ``__repr__`` or ``strip`` never compare equal, and nothing a program writes (stdout, a
forged result frame) carries a verdict.
"""

from __future__ import annotations

import pickle
import textwrap
import unittest.mock
import uuid
from typing import Any

import httpx
import pytest
from attack_programs import DEEP_MEMORY_SCAN

pytestmark = pytest.mark.docker


def program(source: str) -> str:
    return textwrap.dedent(source).strip() + "\n"


def induction(
    answer: str, outputs: list[str] | None = None, inputs: list[str] | None = None
) -> dict[str, Any]:
    """An induction answer on hidden pairs of f(x) = x * 2 (or the given ones)."""
    inputs = inputs or ["1", "2", "3"]
    return {
        "task_type": "induction",
        "answer": program(answer),
        "inputs": inputs,
        "outputs": outputs or [str(int(text) * 2) for text in inputs],
    }


def abduction(
    answer: str, expected: str = "[1, 2]", source: str = "def f(x):\n    return x"
) -> dict[str, Any]:
    return {"task_type": "abduction", "program": source, "answer": answer, "expected_output": expected}


def deduction(answer: str, expected: str, imports: list[str] | None = None) -> dict[str, Any]:
    return {"task_type": "deduction", "answer": answer, "expected_output": expected, "imports": imports or []}


ALWAYS_EQUAL = """
class AlwaysEqual:
    def __repr__(self):
        return "AlwaysEqual()"
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    def __hash__(self):
        return 0
"""

# A result frame forged from inside the answer: the run's nonce read from the run's header via gc,
# values that claim whatever the forger likes (here the expected text, as a repr), then os._exit(0)
# so the runner never writes the real frame. The frame carries values only, never a verdict (the
# "verdict" key is ignored), and the expected outputs never reach the answer's sandbox (read on the
# trusted side, or evaluated in a request of their own: see LEAK_PROBES), so a forger has nothing
# right to claim unless it solved the task.
FORGE_FRAME = """
import gc, json, os, struct
def _forge():
    request = next(o for o in gc.get_objects() if type(o) is dict and "nonce" in o and "encoder" in o)
    job = next(o for o in gc.get_objects() if type(o) is dict and "calls" in o and "kind" in o)
    value = '["t",[["s","ok"],["r","2"],["s","2"]]]'
    body = (
        '{"v":1,"nonce":' + json.dumps(request["nonce"]) + ',"outcome":"ok","exc_type":null,'
        '"exc_builtin":false,"exit_code":0,"non_canonical":false,"encode_error":null,"verdict":"correct",'
        '"values":[' + ",".join([value] * len(job["calls"])) + "]}"
    ).encode()
    os.write(3, struct.pack(">I", len(body)) + body)
    os._exit(0)
_forge()
def f(x):
    return x * 2
"""

# The same frame, but claiming canonical ints: the forger has to guess the hidden outputs.
FORGE_GUESS = FORGE_FRAME.replace('["r","2"],["s","2"]', '["i","7"],["s","7"]')
# A forger that computes the right values itself: the control showing that forged frames are accepted.
FORGE_RIGHT = FORGE_FRAME.replace('["r","2"],["s","2"]', '["i","2"],["s","2"]')

# Two probes for the expected outputs of a check, in the answer's own process. Each keeps the texts that
# fullmatch PATTERN (replaced by an expression that decodes the regex from hex, so that the probe's own
# job holds no text the memory scan could match), and f evaluates the first one found. LEAK_FRAMES reaches the
# fork-server's queued and running ``run`` messages through the frames, where the expected-output
# evaluations once sat (before they ran in requests of their own), and every dict gc finds. LEAK_MEMORY
# reads the pages around every gc object, freed memory included (as tests/attack_programs.MEMORY_SCAN).
LEAK_FRAMES = """
import gc, re, sys
def _messages():
    frame = sys._getframe()
    while frame is not None:
        for value in list(frame.f_locals.values()):
            yield from list(getattr(value, "queue", None) or [])
            for run in list((getattr(value, "runs", None) or {}).values()):
                yield getattr(run, "request", None)
        frame = frame.f_back
    yield from [o for o in gc.get_objects() if type(o) is dict and "job" in o]
def _texts():
    for message in _messages():
        try:
            for item in message["job"]["expressions"]:
                yield item["text"]
        except (KeyError, TypeError):
            pass
_TEXTS = [text for text in _texts() if re.fullmatch(PATTERN, text)]
def f(x):
    return eval(_TEXTS[0]) if _TEXTS else None
"""
LEAK_MEMORY = """
import ctypes, gc, os, re
libc = ctypes.CDLL(None, use_errno=True)
libc.write.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t)
r, w = os.pipe()
pages = {(id(o) & ~0xFFFFF) + k for o in gc.get_objects() for k in range(0, 0x100000, 4096)}
_TEXTS = []
for page in sorted(pages):
    n = libc.write(w, page, 4096)
    if n > 0:
        data = os.read(r, n)
        # A job's texts in memory, whichever way they were encoded: JSON, or a marshal string (a type
        # byte, a one-byte length, the text), as jobs travel since 2026-12-02.
        for found in re.finditer(rb'"text":\\s*"(' + PATTERN.encode() + rb')"', data):
            _TEXTS.append(found.group(1).decode())
        for found in re.finditer(rb'[Zz\\xda\\xfa](.)(' + PATTERN.encode() + rb')', data, re.S):
            if found.group(1)[0] == len(found.group(2)):
                _TEXTS.append(found.group(2).decode())
def f(x):
    return eval(_TEXTS[0]) if _TEXTS else None
"""
LEAK_PROBES = {"frames-and-gc": LEAK_FRAMES, "memory-scan": LEAK_MEMORY}

PICKLED_ANY = pickle.dumps(unittest.mock.ANY)

CHECK_ATTACKS = [
    # -- objects that lie about equality -------------------------------------------------------------
    pytest.param(
        abduction("type('A', (), {'__eq__': lambda s, o: True})()"),
        "bad_arguments",
        id="abduction-always-equal-via-type",
    ),
    pytest.param(
        abduction("ANY", source="from unittest.mock import ANY\ndef f(x):\n    return x"),
        "wrong_answer",
        id="abduction-mock-any-by-plain-name",
    ),
    pytest.param(
        deduction("ANY", "[1, 2]", imports=["from unittest.mock import ANY"]),
        "wrong_answer",
        id="deduction-mock-any",
    ),
    pytest.param(
        induction(ALWAYS_EQUAL + "def f(x):\n    return AlwaysEqual()"),
        "wrong_answer",
        id="induction-always-equal-object",
    ),
    pytest.param(
        induction(
            "class S(str):\n    def __eq__(self, other):\n        return True\ndef f(x):\n    return S('no')"
        ),
        "wrong_answer",
        id="induction-str-subclass-eq",
    ),
    pytest.param(
        induction(
            "class S(str):\n    def __repr__(self):\n        return 'SECRET'\ndef f(x):\n    return S('x')",
            outputs=["'SECRET'"] * 3,
        ),
        "wrong_answer",
        id="induction-str-subclass-repr",
    ),
    pytest.param(
        induction(
            "class S(str):\n    def strip(self, *a):\n        return 'yes'\ndef f(x):\n    return S(' no ')",
            outputs=["'yes'"] * 3,
        ),
        "wrong_answer",
        id="induction-str-subclass-strip",
    ),
    pytest.param(
        induction(
            "class I(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
            "def f(x):\n    return I(x * 2)"
        ),
        "wrong_answer",
        id="induction-int-subclass-right-value",
    ),
    pytest.param(
        induction(
            "class L(list):\n    def __eq__(self, other):\n        return True\ndef f(x):\n    return L()",
            outputs=["[1]", "[2]", "[3]"],
        ),
        "wrong_answer",
        id="induction-list-subclass-eq",
    ),
    pytest.param(
        induction(
            "import collections\nP = collections.namedtuple('P', 'a b')\ndef f(x):\n    return P(x, x)",
            outputs=["(1, 1)", "(2, 2)", "(3, 3)"],
        ),
        "wrong_answer",
        id="induction-namedtuple-for-tuple",
    ),
    pytest.param(
        induction("def f(x):\n    return x == 1", outputs=["1", "0", "0"]),
        "wrong_answer",
        id="induction-bool-for-int",
    ),
    # -- exits ---------------------------------------------------------------------------------------
    pytest.param(
        induction(
            "class E:\n    def __eq__(self, other):\n        raise SystemExit(0)\ndef f(x):\n    return E()"
        ),
        "wrong_answer",
        id="induction-systemexit-in-eq",
    ),
    pytest.param(
        induction(
            "import os\nclass E:\n    def __repr__(self):\n        os._exit(0)\ndef f(x):\n    return E()"
        ),
        "runtime_error",
        id="induction-os-exit-in-repr",
    ),
    pytest.param(
        induction(
            "class E:\n    def __repr__(self):\n        raise SystemExit(0)\ndef f(x):\n    return E()"
        ),
        "runtime_error",
        id="induction-systemexit-in-repr",
    ),
    pytest.param(
        induction("import sys\ndef f(x):\n    sys.exit(0)"), "runtime_error", id="induction-sys-exit-in-f"
    ),
    pytest.param(
        induction("import sys\nsys.exit(0)\ndef f(x):\n    return x * 2"),
        "runtime_error",
        id="induction-sys-exit-at-top-level",
    ),
    pytest.param(
        induction("import os\nos._exit(0)\ndef f(x):\n    return x * 2"),
        "runtime_error",
        id="induction-os-exit-at-top-level",
    ),
    pytest.param(abduction("exit(0)"), "bad_arguments", id="abduction-exit-call"),
    pytest.param(deduction("quit()", "2"), "bad_arguments", id="deduction-quit-call"),
    # -- expression injection through argument text -------------------------------------------------
    pytest.param(abduction("1) or True or (1"), "bad_arguments", id="injection-close-paren-or-true"),
    pytest.param(abduction("1), f(2"), "bad_arguments", id="injection-second-call"),
    pytest.param(abduction("1) #"), "bad_arguments", id="injection-comment"),
    pytest.param(abduction("1)\nimport os\nf(1"), "bad_arguments", id="injection-newline-statement"),
    pytest.param(abduction("(f := lambda *a: [1, 2])"), "bad_arguments", id="injection-walrus-rebinds-f"),
    pytest.param(abduction("__import__('os').system('true')"), "bad_arguments", id="injection-dunder-import"),
    pytest.param(
        abduction("globals().update(f=lambda *a: [1, 2])"), "bad_arguments", id="injection-globals-update"
    ),
    pytest.param(
        abduction("(lambda g=globals(): g.update(f=lambda *a: [1, 2]))()"),
        "bad_arguments",
        id="injection-lambda-default-rebinds-f",
    ),
    pytest.param(
        abduction("[].__class__.__base__.__subclasses__()"), "bad_arguments", id="injection-dunder-attribute"
    ),
    pytest.param(abduction("f.__globals__"), "bad_arguments", id="injection-function-globals"),
    pytest.param(abduction("vars()['f']"), "bad_arguments", id="injection-vars"),
    pytest.param(abduction("*[[1, 2]]"), "bad_arguments", id="injection-starred"),
    pytest.param(abduction("**{'x': [1, 2]}"), "bad_arguments", id="injection-double-star"),
    pytest.param(abduction("eval('[1, 2]')"), "bad_arguments", id="injection-eval"),
    pytest.param(abduction("__builtins__"), "bad_arguments", id="injection-dunder-name"),
    pytest.param(abduction("f._x"), "bad_arguments", id="injection-private-attribute"),
    pytest.param(abduction("_"), "runtime_error", id="single-underscore-name-is-unbound"),
    pytest.param(
        abduction("'__class__'", expected="'__class__'", source="def f(x):\n    return x[::-1]"),
        "wrong_answer",
        id="dunder-string-is-only-data",
    ),
    pytest.param(deduction("__import__('os').getpid()", "1"), "bad_arguments", id="deduction-dunder-import"),
    pytest.param(deduction("[1, 2]; import os", "[1, 2]"), "bad_arguments", id="deduction-statement"),
    # -- printing the answer instead of returning it ------------------------------------------------
    pytest.param(induction("def f(x):\n    print(x * 2)"), "wrong_answer", id="induction-prints-answer"),
    pytest.param(deduction("print(2)", "2"), "bad_arguments", id="deduction-print-call"),
    # -- pickles -------------------------------------------------------------------------------------
    pytest.param(abduction(repr(pickle.dumps([1, 2]))), "wrong_answer", id="abduction-pickle-bytes-literal"),
    pytest.param(
        deduction(f"pickle.loads({PICKLED_ANY!r})", "2", imports=["import pickle"]),
        "wrong_answer",
        id="deduction-pickle-loads-mock-any",
    ),
    pytest.param(
        deduction(f"pickle.loads({PICKLED_ANY!r})", "2"), "runtime_error", id="deduction-pickle-not-imported"
    ),
    # -- values that break naive comparisons ---------------------------------------------------------
    pytest.param(deduction("float('nan')", "float('nan')"), "wrong_answer", id="nan-equals-nothing"),
    pytest.param(deduction("[float('nan')]", "[float('nan')]"), "wrong_answer", id="nan-inside-list"),
    pytest.param(deduction("True", "1"), "wrong_answer", id="bool-for-int"),
    pytest.param(deduction("1", "True"), "wrong_answer", id="int-for-bool"),
    pytest.param(deduction("{'a': True}", "{'a': 1}"), "wrong_answer", id="bool-for-int-in-dict"),
    pytest.param(deduction("(1, 2)", "[1, 2]"), "wrong_answer", id="tuple-for-list"),
    pytest.param(deduction("[1, 2]", "(1, 2)"), "wrong_answer", id="list-for-tuple"),
    pytest.param(deduction("{1, 2}", "[1, 2]"), "wrong_answer", id="set-for-list"),
    pytest.param(deduction("b'ab'", "'ab'"), "wrong_answer", id="bytes-for-str"),
    pytest.param(deduction("'2'", "2"), "wrong_answer", id="str-for-int"),
    pytest.param(deduction("None", "[]"), "wrong_answer", id="none-for-empty-list"),
    # -- huge values ---------------------------------------------------------------------------------
    pytest.param(deduction("[0] * 10**5", "[1] * 10**5"), "non_canonical_output", id="huge-list-wrong"),
    pytest.param(deduction("10**4999", "10**4999"), "non_canonical_output", id="5000-digit-int"),
    pytest.param(deduction("[" * 10_000 + "]" * 10_000, "[]"), "bad_arguments", id="nested-10000-text"),
    pytest.param(
        induction("def f(x):\n    v = []\n    for _ in range(10_000):\n        v = [v]\n    return v"),
        "non_canonical_output",
        id="nested-10000-value",
    ),
    pytest.param(deduction("sum(range(10**12))", "1"), "timeout", id="endless-sum"),
    pytest.param(deduction("[0] * 10**10", "1"), "memory_limit", id="memory-bomb"),
    pytest.param(
        induction("def f(x):\n    return [0] * 10**10"), "memory_limit", id="memory-bomb-in-induction"
    ),
    pytest.param(deduction("'x' * 2**22", "'x' * 2**22"), "output_limit", id="str-over-the-text-budget"),
    # -- the result frame ----------------------------------------------------------------------------
    pytest.param(induction(FORGE_FRAME, outputs=["2", "4", "6"]), "wrong_answer", id="forged-frame-repr"),
    pytest.param(induction(FORGE_GUESS, outputs=["2", "4", "6"]), "wrong_answer", id="forged-frame-guess"),
]


def check_one(client: httpx.Client, answer: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/azr/check", json={"answers": [answer]})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["results"][0]
    return result


@pytest.mark.parametrize(("answer", "reason"), CHECK_ATTACKS)
def test_check_attack_is_never_correct(client: httpx.Client, answer: dict[str, Any], reason: str) -> None:
    """The attacking answer is not correct, gets no reward, and gets exactly its expected reason."""
    result = check_one(client, answer)
    assert (result["correct"], result["reward"], result["reason"]) == (False, 0.0, reason), result


VALIDATE_ATTACKS = [
    pytest.param(
        program(ALWAYS_EQUAL + "def f(x):\n    return AlwaysEqual()"),
        "1",
        "non_canonical_output",
        id="always-equal-output",
    ),
    pytest.param(
        "class A:\n    def __eq__(self, other):\n        return True\ndef f(x):\n    return A()",
        "1",
        "nondeterministic",  # the default repr holds the object's address, which differs between calls
        id="always-equal-default-repr",
    ),
    pytest.param(
        "class S(str):\n    pass\ndef f(x):\n    return S(x)",
        "'a'",
        "non_canonical_output",
        id="str-subclass-output",
    ),
    pytest.param(
        "import sys\nsys.exit(0)\ndef f(x):\n    return x", "1", "runtime_error", id="sys-exit-at-top"
    ),
    pytest.param(
        "import os\nos._exit(0)\ndef f(x):\n    return x", "1", "runtime_error", id="os-exit-at-top"
    ),
    pytest.param(
        "import random\ndef f(x):\n    return random.random()", "1", "nondeterministic", id="random"
    ),
    pytest.param(
        "def f(x):\n    return [] if getattr(f, 'seen', False) else setattr(f, 'seen', True)",
        "1",
        "nondeterministic",
        id="state-between-calls",
    ),
    pytest.param("def f(x):\n    return x", "1) or (1", "bad_arguments", id="injection-in-input"),
    pytest.param("def f(x):\n    return x", "10**4999", "non_canonical_output", id="5000-digit-int"),
    pytest.param("def f(x):\n    return [0] * 10**10", "1", "memory_limit", id="memory-bomb"),
    pytest.param("def f(x):\n    return 'x' * 2**22", "1", "output_limit", id="str-over-the-text-budget"),
]


@pytest.mark.parametrize(("source", "argument", "reason"), VALIDATE_ATTACKS)
def test_validate_attack_is_rejected(client: httpx.Client, source: str, argument: str, reason: str) -> None:
    """The hostile proposed task is not valid when only canonical outputs are allowed, with exactly its reason."""
    task = {"task_type": "deduction", "program": source, "inputs": [argument]}
    response = client.post("/v1/azr/validate", json={"tasks": [task], "allow_non_canonical": False})
    assert response.status_code == 200, response.text
    result = response.json()["results"][0]
    assert (result["valid"], result["reason"]) == (False, reason), result


def test_non_canonical_output_is_never_a_canonical_value(client: httpx.Client) -> None:
    """Where non-canonical outputs are allowed, a lying object is kept only as a repr, with no value."""
    task = {
        "task_type": "deduction",
        "program": program(ALWAYS_EQUAL + "def f(x):\n    return AlwaysEqual()"),
    }
    result = client.post("/v1/azr/validate", json={"tasks": [{**task, "inputs": ["1"]}]}).json()["results"][0]
    assert result["valid"] is True
    assert result["values"] == [None]
    assert result["outputs"] == ["AlwaysEqual()"]


@pytest.mark.parametrize(
    ("answer", "expected", "correct", "reason"),
    [
        pytest.param("[0] * 90_000", "[0] * 90_000", True, "ok", id="90000-elements"),
        pytest.param("[0] * 90_000", "[0] * 89_999 + [1]", False, "wrong_answer", id="one-element-differs"),
        pytest.param("[0] * 10**5", "[0] * 10**5", False, "non_canonical_output", id="over-the-node-cap"),
        pytest.param("10**3999", "10**3999", True, "ok", id="4000-digit-int"),
    ],
)
def test_huge_values_are_judged_by_value(
    client: httpx.Client, answer: str, expected: str, correct: bool, reason: str
) -> None:
    """Huge values are compared by value up to the encoder caps, and fail cleanly beyond them."""
    result = check_one(client, deduction(answer, expected))
    assert (result["correct"], result["reason"]) == (correct, reason), result


def azr_record(value: str) -> str:
    """AZR's record of a long output: the first 200 characters of its repr, ``...``, the last 200."""
    text = repr(value)
    return text[:200] + "..." + text[-200:] if len(text) > 400 else text


# Both once were bugs (internal_error on a mismatch; the tail of reprs over 1 MiB was cut); fixed.
TRUNCATED_BUG: tuple[pytest.MarkDecorator, ...] = ()
REPR_CAP_BUG: tuple[pytest.MarkDecorator, ...] = ()
LONG = "'a' * 300 + 'b' * 2**20 + 'c' * 300"


@pytest.mark.parametrize(
    ("answer", "record", "correct", "reason"),
    [
        pytest.param("'y' * 500", azr_record("y" * 500), True, "ok", id="right"),
        pytest.param("'y' * 300 + 'x' + 'y' * 199", azr_record("y" * 500), True, "ok", id="middle-differs"),
        pytest.param(
            "'x' * 500", azr_record("y" * 500), False, "wrong_answer", id="wrong", marks=TRUNCATED_BUG
        ),
        pytest.param("1", azr_record("y" * 500), False, "wrong_answer", id="short", marks=TRUNCATED_BUG),
        pytest.param(
            "[][1]", azr_record("y" * 500), False, "runtime_error", id="raises", marks=TRUNCATED_BUG
        ),
        pytest.param(
            LONG,
            azr_record("a" * 300 + "b" * 2**20 + "c" * 300),
            True,
            "ok",
            id="repr-over-1-mib",
            marks=REPR_CAP_BUG,
        ),
    ],
)
def test_truncated_records_compare_by_truncated_repr(
    client: httpx.Client, answer: str, record: str, correct: bool, reason: str
) -> None:
    """An AZR-truncated record matches exactly the answers whose repr truncates to it (the middle is
    unknown); any other answer is an ordinary wrong answer or error, never a sandboxd fault."""
    result = check_one(client, deduction(answer, record))
    assert (result["correct"], result["reason"]) == (correct, reason), result


SIBLING = {"task_type": "deduction", "answer": "'sibling'", "expected_output": "'sibling'"}
HIDDEN = r"987654321|987654320 \+ 1"  # the expected outputs the probes look for


def hidden(pattern: str) -> str:
    """A probe's PATTERN: an expression that makes the regex at run time, from hex."""
    return f"bytes.fromhex({pattern.encode().hex()!r}).decode()"


def leak_attempts(client: httpx.Client, probe: str, pattern: str, expected: str) -> list[bool]:
    """Eight check requests, each the probe's answer and eight sibling deductions; is the probe correct?"""
    source = LEAK_PROBES[probe].replace("PATTERN", hidden(pattern))
    answer = induction(source, inputs=["1"], outputs=[expected])
    correct = []
    for _ in range(8):
        response = client.post("/v1/azr/check", json={"answers": [answer, *[SIBLING] * 8]})
        assert response.status_code == 200, response.text
        first, *siblings = response.json()["results"]
        assert all(sibling["correct"] for sibling in siblings), siblings
        correct.append(first["correct"])
    return correct


@pytest.mark.parametrize("probe", LEAK_PROBES)
@pytest.mark.parametrize(
    "expected",
    [
        pytest.param("987654321", id="literal-read-on-the-trusted-side"),
        pytest.param("987654320 + 1", id="expression-evaluated-before-the-answers"),
    ],
)
def test_answer_cannot_read_the_expected_outputs(client: httpx.Client, probe: str, expected: str) -> None:
    """An induction answer cannot find the hidden expected outputs in its fork-server's memory.

    Literal expected outputs never enter a sandbox; the others are evaluated on the request's containers
    before any answer runs there, and reach the daemon through fork-private memory. (When they were
    queued beside the answers, the frames probe read them in about 4 of 5 attempts.)
    """
    assert not any(leak_attempts(client, probe, HIDDEN, expected))


@pytest.mark.parametrize("probe", LEAK_PROBES)
def test_leak_probes_cannot_reach_the_jobs_beside_them(client: httpx.Client, probe: str) -> None:
    """Not even the jobs of its own request (the siblings) are in an answer's memory any more.

    Until the fork-server kept job text out of the memory children inherit (docs/security-model.md),
    both probes found their siblings here; tests/test_attacks.py scans far wider for the same thing.
    """
    assert not any(leak_attempts(client, probe, "'sibling'", "'sibling'"))


EXPECTED_SCAN = (
    DEEP_MEMORY_SCAN.replace("print(readable > 1000, sorted(found))", "")
    + """
import re
_FOUND = sorted(m for m in found if re.fullmatch("MARKER-[0-9a-f]{16}", m))
def f(x):
    return readable > 1000 if x == 1 else (_FOUND[0] if _FOUND else None)
"""
)


def test_answer_cannot_find_expected_values_evaluated_before_it(client: httpx.Client) -> None:
    """Expected outputs that are not literals are evaluated on the request's own container just before
    its answers (azr/check.py). An answer that scans every page it can reach, after they ran there,
    finds none of their values: the fork-server relayed them through fork-private memory.

    The answer reports first whether its scan read over 1,000 pages (that value matches, so the scan
    proves something), then the marker it found; the second value must be the one that differs. The
    expected text splits the marker, so only the evaluated value holds it whole.
    """
    for _ in range(4):
        marker = f"{uuid.uuid4().hex[:16]}"
        answer = induction(EXPECTED_SCAN, inputs=["1", "2"], outputs=["True", f"'MARK' + 'ER-{marker}'"])
        response = client.post("/v1/azr/check", json={"answers": [answer, *[SIBLING] * 3]})
        assert response.status_code == 200, response.text
        first = response.json()["results"][0]
        assert (first["correct"], first["reason"], first["detail"]) == (
            False,
            "wrong_answer",
            "value 1 differs",
        )
    # The control: the same scan finds the value when it is in the answer's own memory.
    planted = f"_KEEP = 'MARK' + 'ER-{marker}'\n" + EXPECTED_SCAN
    control = induction(planted, inputs=["1", "2"], outputs=["True", f"'MARK' + 'ER-{marker}'"])
    result = check_one(client, control)
    assert (result["correct"], result["reason"]) == (True, "ok"), result


def test_answer_cannot_read_the_expected_outputs_under_pooled(client: httpx.Client) -> None:
    """Under ``pooled`` too, no answer reads non-literal expected outputs (or AZR refuses the policy)."""
    probe = LEAK_PROBES["memory-scan"].replace("PATTERN", hidden(HIDDEN))
    answer = induction(probe, inputs=["1"], outputs=["987654320 + 1"])
    results = []
    for _ in range(4):
        response = client.post("/v1/azr/check", json={"answers": [answer], "policy": "pooled"})
        if 400 <= response.status_code < 500:  # refusing container-reusing policies is a fix too
            return
        assert response.status_code == 200, response.text
        results += response.json()["results"]
    assert not any(result["correct"] for result in results), results


def test_the_memory_probe_finds_a_marshalled_job_text_in_its_own_memory(client: httpx.Client) -> None:
    """The control of the memory-scan rows: a job text in marshal form in the answer's own memory (as a
    sibling's job would be, were it there) is found, and the answer is then correct."""
    text = b"987654320 + 1".hex()
    planted = f"import marshal\n_PLANT = marshal.dumps({{'text': bytes.fromhex({text!r}).decode()}})\n"
    probe = planted + LEAK_MEMORY.replace("PATTERN", hidden(HIDDEN))
    result = check_one(client, induction(probe, inputs=["1"], outputs=["987654321"]))
    assert (result["correct"], result["reason"]) == (True, "ok"), result


def test_forged_frame_is_only_another_way_to_return_values(client: httpx.Client) -> None:
    """A forged frame with the nonce is accepted, so the rows above test it; it carries values, not verdicts."""
    right = check_one(client, induction(FORGE_RIGHT, inputs=["1", "1"], outputs=["2", "2"]))
    assert (right["correct"], right["reason"]) == (True, "ok"), right
    wrong = check_one(client, induction(FORGE_RIGHT, inputs=["1", "2"], outputs=["2", "4"]))
    assert (wrong["correct"], wrong["reason"], wrong["detail"]) == (False, "wrong_answer", "value 1 differs")


def test_service_is_healthy_after_the_attacks(client: httpx.Client) -> None:
    """After every attack the service is live and ready, and an honest answer is still correct."""
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    result = check_one(client, induction("def f(x):\n    return x * 2"))
    assert (result["correct"], result["reason"]) == (True, "ok"), result
