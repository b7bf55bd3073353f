"""Script runs compiled on the trusted side (sandboxd/bytecode.py): the child loads the daemon's
bytecode instead of compiling, and everything the program can observe stays as it was."""

from __future__ import annotations

import marshal
import sys
from types import CodeType

import httpx
import pytest

from sandboxd import bytecode
from sandboxd.bytecode import (
    MAX_JOB_CHARS,
    MAX_SOURCE_CHARS,
    SECONDS_PER_RUN,
    Compiler,
    precompiled,
    with_bytecode,
)
from sandboxd.policy import load_policies
from sandboxd.run import ForkRequest, RunSpec, fork_request
from sandboxd.runner import jobs
from sandboxd.settings import BUILTIN_POLICIES
from sandboxd.wheelhouse import IMAGE_PYTHON

same_python = pytest.mark.skipif(
    sys.version_info[:2] != IMAGE_PYTHON, reason="the daemon precompiles only for the image's Python"
)
ANNOTATED = "def f(x: int) -> list[int]:\n    return [x]\nprint(f.__annotations__, f(2))\n"


def _sent_job(request: ForkRequest) -> dict[str, object]:
    """The job of a fork-server ``run`` as its child reads it (runner/child.py, ``read_job``)."""
    run, job = marshal.loads(request.body[: request.header["job_bytes"]])
    assert run["nonce"] == request.nonce
    return job  # type: ignore[no-any-return]


def _loaded(blob: object) -> CodeType:
    assert isinstance(blob, CodeType)
    return marshal.loads(marshal.dumps(blob))  # as the child gets it, inside its job's marshal


@same_python
def test_precompiled_is_what_the_child_would_compile() -> None:
    code = _loaded(precompiled(ANNOTATED))
    own = jobs._script_code({"code": ANNOTATED})  # the child's own compile, in runner/jobs.py
    assert code == own
    assert code.co_filename == "<program>"  # type: ignore[attr-defined]
    assert code.co_flags == own.co_flags  # type: ignore[attr-defined]  # future annotations included


@pytest.mark.parametrize(
    "source",
    [
        "def f(:\n    pass",  # SyntaxError
        "x = 1\nprint(x is 1)",  # SyntaxWarning: the child must print it
        "print('a')\x00",  # null byte
        "x = " + "(" * 300 + "1" + ")" * 300,  # too deeply nested for the parser
        "print(1)\n" + "#" * MAX_SOURCE_CHARS,  # too long to spend the event loop on
        "print(list({'aa', 'bb', 'cc'}))",  # a frozenset constant: its order follows the hash seed
        "def f(x):\n    return [y for y in x if y in {1, 2}]",  # one in a nested function, too
    ],
    ids=["syntax-error", "syntax-warning", "null-byte", "nesting", "too-long", "set", "nested-set"],
)
def test_the_child_compiles_what_fails_or_warns_or_is_long(source: str) -> None:
    assert precompiled(source) is None


CALLS_JOB = {
    "kind": "calls",
    "imports": ["import math", "from collections import Counter"],
    "program": "def f(a: int, b=2):\n    return [math.floor(a / b), Counter('abca')]",
    "calls": ["7", "9, b=4", "1,, 2"],  # the last does not compile: the child reports SyntaxError
    "expressions": [{"imports": ["import math"], "text": "math.pi"}, {"imports": [], "text": "(("}],
    "probes": ["0", "-3"],
    "repeat": 2,
}


def _compiled(source: str, name: str, mode: str) -> object:
    return jobs._code(None, source, name, mode)  # compile() as the child calls it, in runner/jobs.py


@same_python
def test_calls_table_holds_what_the_child_would_compile() -> None:
    table = with_bytecode(CALLS_JOB, Compiler(1000))["bytecode"]
    assert [_loaded(b) for b in table["imports"]] == [
        _compiled(line, "<imports>", "exec") for line in CALLS_JOB["imports"]
    ]
    assert _loaded(table["program"]) == _compiled(CALLS_JOB["program"], "<program>", "exec")
    assert table["calls"][2] is None  # does not compile: left to the child, which reports it
    assert [_loaded(b) for b in table["calls"][:2]] == [
        _compiled(f"f({text})", "<input>", "eval") for text in ("7", "9, b=4")
    ]
    assert _loaded(table["expressions"][0]["text"]) == _compiled("math.pi", "<expression>", "eval")
    assert table["expressions"][1]["text"] is None
    assert [_loaded(b) for b in table["probes"]] == [
        _compiled(f"f({text})", "<probe>", "eval") for text in ("0", "-3")
    ]


@same_python
def test_calls_run_the_same_with_and_without_the_table() -> None:
    def outcome(job: dict[str, object]) -> list[object]:
        values = jobs.run_calls(job).values
        return [value[:2] if value[0] == "ok" else value for value in values]

    runnable = {**CALLS_JOB, "calls": CALLS_JOB["calls"][:2]}
    with_table = with_bytecode(runnable, Compiler(1000))
    broken = {**with_table, "bytecode": {"program": "!!", "calls": [42, None], "expressions": "x"}}
    assert outcome(with_table) == outcome(runnable) == outcome(broken)
    assert outcome(runnable)[0] == ("ok", [3, {"a": 2, "b": 1, "c": 1}])
    assert outcome(runnable)[-1] == ("error", "SyntaxError")  # the expression "((", either way
    for job in (
        CALLS_JOB,
        with_bytecode(CALLS_JOB, Compiler(1000)),
    ):  # a call that does not compile fails the job
        with pytest.raises(SyntaxError):
            jobs.run_calls(job)


@same_python
def test_one_job_compiles_at_most_its_budget_on_the_trusted_side() -> None:
    texts = [f"x{index}" + "x" * (MAX_SOURCE_CHARS - 12) for index in range(8)]  # all different
    job = {"kind": "calls", "imports": [], "program": None, "calls": texts, "expressions": []}
    blobs = with_bytecode(job, Compiler(1000))["bytecode"]["calls"]
    compiled = sum(blob is not None for blob in blobs)
    assert 0 < compiled == MAX_JOB_CHARS // (MAX_SOURCE_CHARS - 7) < len(blobs)


def test_fork_request_sends_bytecode_only_for_scripts_and_calls() -> None:
    policy = load_policies(BUILTIN_POLICIES)["default"]
    script = fork_request(
        RunSpec(job={"kind": "script", "code": "print(1)"}, limits=policy.limits), policy, "a"
    )
    calls = fork_request(
        RunSpec(
            job={"kind": "calls", "imports": [], "program": "def f(): return 1", "calls": [""]},
            limits=policy.limits,
        ),
        policy,
        "b",
    )
    job = _sent_job(script)
    assert job["code"] == "print(1)"  # the source always travels with it
    same = sys.version_info[:2] == IMAGE_PYTHON
    assert ("bytecode" in job) == same
    assert ("bytecode" in _sent_job(calls)) == same
    formal = fork_request(RunSpec(job={"kind": "formal", "program": "x"}, limits=policy.limits), policy, "c")
    assert "bytecode" not in _sent_job(formal)


def test_fork_request_sends_the_job_with_lists_for_tuples() -> None:
    """The job travels in marshal, which keeps tuples; the child expects lists, as JSON gave it."""
    policy = load_policies(BUILTIN_POLICIES)["default"]
    job = {
        "kind": "calls",
        "imports": ("import math",),
        "program": "def f(x):\n    return x",
        "calls": ("1", "2"),
        "expressions": ({"imports": (), "text": "math.pi"},),
    }
    request = fork_request(RunSpec(job=job, limits=policy.limits), policy, "t")
    sent = _sent_job(request)
    assert sent["imports"] == ["import math"]
    assert sent["calls"] == ["1", "2"]
    assert sent["expressions"] == [{"imports": [], "text": "math.pi"}]
    assert jobs.run_calls(sent).values[0][:2] == ("ok", 1)


@pytest.mark.parametrize(
    "blob",
    ["a text", marshal.dumps(compile("print(8)", "<program>", "exec")), 42],
    ids=["text", "marshalled-bytes", "int"],
)
def test_the_child_compiles_the_source_when_the_job_holds_no_code_object(blob: object) -> None:
    code = jobs._script_code({"code": "print(7)", "bytecode": blob})
    assert code == compile("print(7)", "<program>", "exec")


@pytest.mark.docker
@same_python
def test_precompiled_and_child_compiled_runs_look_the_same(client: httpx.Client) -> None:
    """Real containers: a short script (precompiled) and the same script made too long to precompile
    (compiled by the child) print the same, fail the same and warn the same."""
    padding = "\n#" + "x" * MAX_SOURCE_CHARS
    cases = [
        ANNOTATED,
        "def g():\n    raise ValueError('nope')\ng()\n",
        "x = 1\nprint(x is 1)\n",
        "def f(:\n",
    ]
    for source in cases:
        assert precompiled(source + padding) is None
        short, long = (
            client.post("/v1/runs", json={"code": code}).json() for code in (source, source + padding)
        )
        for field in ("status", "exit_code", "stdout", "stderr"):
            assert short[field] == long[field], (source, field, short[field], long[field])
    annotated = client.post("/v1/runs", json={"code": ANNOTATED}).json()
    assert annotated["stdout"] == "{'x': 'int', 'return': 'list[int]'} [2]\n"
    warned = client.post("/v1/runs", json={"code": cases[2]}).json()
    assert "SyntaxWarning" in warned["stderr"]
    failed = client.post("/v1/runs", json={"code": cases[1]}).json()
    assert failed["status"] == "runtime_error"
    assert 'File "<program>", line 2, in g' in failed["stderr"]


@same_python
def test_a_batch_compiles_each_repeated_text_once(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str, str]] = []
    real = bytecode.precompiled

    def counted(source: str, name: str = "<program>", mode: str = "exec") -> str | None:
        seen.append((source, name, mode))
        return real(source, name, mode)

    monkeypatch.setattr(bytecode, "precompiled", counted)
    compiler = Compiler(5)
    answers = [{**CALLS_JOB, "calls": ["7"], "expressions": [], "probes": []} for _ in range(5)]
    tables = [with_bytecode(job, compiler)["bytecode"] for job in answers]
    assert all(table == tables[0] for table in tables)
    assert len(seen) == len(set(seen)) == 4  # two imports, the program, one call


@same_python
def test_a_batch_stops_compiling_when_its_budget_is_spent() -> None:
    compiler = Compiler(3)
    assert compiler.budget_seconds == pytest.approx(3 * SECONDS_PER_RUN)
    assert compiler("print(1)") is not None
    compiler.spent_seconds = compiler.budget_seconds  # as after slow texts
    assert compiler("print(2)") is None  # the child compiles it
    assert compiler("print(1)") is not None  # what is already compiled is still sent
    job = with_bytecode({"kind": "script", "code": "print(3)"}, compiler)
    assert "bytecode" not in job


def test_why_set_constants_are_left_to_the_child() -> None:
    """The hazard that _orders_by_hash avoids: a set constant marshalled under one hash seed and
    loaded under another iterates differently from the same source compiled under the second."""
    import subprocess  # noqa: PLC0415 - only this test starts interpreters

    source = "print(list({%s}))" % ", ".join(repr(chr(97 + i) * 2) for i in range(6))  # noqa: UP031 - a program text
    dump = f"import marshal, sys; sys.stdout.buffer.write(marshal.dumps(compile({source!r}, 'p', 'exec')))"
    load = "import marshal, sys; exec(marshal.loads(sys.stdin.buffer.read()))"

    def python(code: str, seed: int, data: bytes = b"") -> bytes:
        env = {"PYTHONHASHSEED": str(seed)}
        return subprocess.run(
            [sys.executable, "-c", code], input=data, env=env, capture_output=True, check=True
        ).stdout

    own = python(source, 0)
    loaded = [python(load, 0, python(dump, seed)) for seed in (1, 2, 3)]
    assert any(output != own for output in loaded)
    assert precompiled(source) is None


@pytest.mark.filterwarnings("ignore:from another thread")  # recorded by whoever holds the filters then
def test_precompiling_never_raises_another_threads_warnings() -> None:
    """The warnings filters are process-wide: precompiling records warnings rather than raising
    them, so the engine client's threads never see a warning turned into an exception."""
    import threading  # noqa: PLC0415 - only this test starts threads
    import warnings  # noqa: PLC0415

    failures: list[BaseException] = []
    stop = threading.Event()

    def warn_forever() -> None:
        try:
            while not stop.is_set():
                warnings.warn("from another thread", UserWarning, stacklevel=1)
        except BaseException as exc:
            failures.append(exc)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = threading.Thread(target=warn_forever)
        other.start()
        try:
            for _ in range(300):
                assert precompiled("x = 1\nprint(x is 1)") is None  # warns: left to the child
        finally:
            stop.set()
            other.join()
    assert failures == []
