"""Script runs compiled on the trusted side (sandboxd/bytecode.py): the child loads the daemon's
bytecode instead of compiling, and everything the program can observe stays as it was."""

from __future__ import annotations

import base64
import json
import marshal
import sys

import httpx
import pytest

from sandboxd.bytecode import MAX_SOURCE_CHARS, precompiled
from sandboxd.policy import load_policies
from sandboxd.run import RunSpec, fork_request
from sandboxd.runner import jobs
from sandboxd.settings import BUILTIN_POLICIES
from sandboxd.wheelhouse import IMAGE_PYTHON

same_python = pytest.mark.skipif(
    sys.version_info[:2] != IMAGE_PYTHON, reason="the daemon precompiles only for the image's Python"
)
ANNOTATED = "def f(x: int) -> list[int]:\n    return [x]\nprint(f.__annotations__, f(2))\n"


def _loaded(blob: str | None) -> object:
    assert blob is not None
    return marshal.loads(base64.b64decode(blob))


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
    ],
    ids=["syntax-error", "syntax-warning", "null-byte", "nesting", "too-long"],
)
def test_the_child_compiles_what_fails_or_warns_or_is_long(source: str) -> None:
    assert precompiled(source) is None


def test_fork_request_sends_bytecode_only_for_scripts() -> None:
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
    job = json.loads(script.body[: script.header["job_bytes"]])
    assert job["code"] == "print(1)"  # the source always travels with it
    assert ("bytecode" in job) == (sys.version_info[:2] == IMAGE_PYTHON)
    assert "bytecode" not in json.loads(calls.body[: calls.header["job_bytes"]])


@pytest.mark.parametrize(
    "blob",
    [
        "not base64 at all!",
        base64.b64encode(b"\x00garbage").decode(),
        base64.b64encode(marshal.dumps(42)).decode(),
    ],
    ids=["not-base64", "bad-marshal", "not-code"],
)
def test_the_child_compiles_the_source_when_the_bytecode_does_not_load(blob: str) -> None:
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
