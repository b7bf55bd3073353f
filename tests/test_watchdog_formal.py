"""The formal equivalence check (CrossHair + z3, inside the sandbox): pure parts, then real containers."""

from __future__ import annotations

import ast
import asyncio
import json
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import posted_results

from sandboxd import image, wheelhouse
from sandboxd.azr.equivalence import FormalProbe, plan
from sandboxd.azr.schemas import Answer
from sandboxd.azr.search_report import (
    Candidates,
    Failed,
    Report,
    candidate_texts,
    confirm,
    interpret,
    read_report,
)
from sandboxd.exceptions import ConfigurationError
from sandboxd.frame import ResultFrame
from sandboxd.limits import Limits
from sandboxd.policy import SandboxPolicy, load_policies
from sandboxd.run import RunResult, RunSpec, fork_request
from sandboxd.runner import formal
from sandboxd.runner.encode import Encoder
from sandboxd.runner.formal import annotation
from sandboxd.service import Service
from sandboxd.settings import BUILTIN_POLICIES, Settings
from sandboxd.testing import running_server
from sandboxd.verdict import Status
from sandboxd.watchdog.decision import Decision
from sandboxd.watchdog.equivalence import RULE_ID, argument_types, impurity, no_counterexample
from sandboxd.watchdog.induction import example_arguments

REFERENCE = "def f(x):\n    return x * 2"
INPUTS, OUTPUTS = ["1", "3", "5"], ["2", "6", "10"]
BUDGET = 4.0
TRAPDOOR = "def f(x):\n    if x == 12345:\n        return 0\n    return x + x"
FORBIDDEN_WORDS = re.compile(r"\b(proved|proven|proof|verified|equivalent)\b", re.IGNORECASE)


def formal_policy() -> SandboxPolicy:
    base = load_policies(BUILTIN_POLICIES)["default"]
    watchdog = base.watchdog.model_copy(
        update={"enabled": True, "formal_check": True, "formal_budget_seconds": BUDGET}
    )
    return base.model_copy(update={"watchdog": watchdog})


def answer(program: str, reference: str | None = REFERENCE, **extra: Any) -> dict[str, Any]:
    body = {"task_type": "induction", "answer": program, "inputs": INPUTS, "outputs": OUTPUTS, **extra}
    if reference is not None:
        body["reference_program"] = reference
    return body


# Pure: argument types, eligibility, wording, the report.


@pytest.mark.parametrize(
    ("shown", "types"),
    [
        pytest.param(["1", "3"], ["int"], id="int"),
        pytest.param(["1.5"], ["float"], id="float"),
        pytest.param(["True"], ["bool"], id="bool"),
        pytest.param(["'abc'"], ["str"], id="str"),
        pytest.param(["None"], ["None"], id="none"),
        pytest.param(["1, 'a'"], ["int", "str"], id="two-arguments"),
        pytest.param(["1", "'a'"], [["union", ["int", "str"]]], id="union"),
        pytest.param(["[1, 2]", "[]"], [["list", "int"]], id="list"),
        pytest.param(["[]"], [["list", "int"]], id="empty-list-defaults-to-int"),
        pytest.param(["{1, 2}"], [["set", "int"]], id="set"),
        pytest.param(["(1, 'a')"], [["tuple", ["int", "str"]]], id="fixed-tuple"),
        pytest.param(["(1,)", "(1, 2)"], [["tuple...", "int"]], id="variable-tuple"),
        pytest.param(["{'a': [1.5]}"], [["dict", "str", ["list", "float"]]], id="dict"),
    ],
)
def test_argument_types_follow_the_examples(shown: list[str], types: list[Any]) -> None:
    """Each position gets the type of its shown values; the runner turns it into a typing annotation."""
    examples = example_arguments(shown)
    assert examples is not None
    assert argument_types(examples) == types
    for description in types:
        annotation(description)  # every description is one the runner understands


def test_runner_annotations_are_real_types() -> None:
    """The runner's annotations are the typing objects CrossHair reads."""
    assert annotation(["list", "int"]) == list[int]
    assert annotation(["dict", "str", ["tuple", ["int", "bool"]]]) == dict[str, tuple[int, bool]]
    assert annotation(["tuple...", "str"]) == tuple[str, ...]
    assert annotation(["union", ["int", "None"]]) == int | None


@pytest.mark.parametrize(
    "shown",
    [
        pytest.param(["[[[[[[1]]]]]]"], id="too-deep"),
        pytest.param(["1, 2", "1"], id="ragged"),
        pytest.param([], id="none-shown"),
    ],
)
def test_uncovered_argument_shapes_have_no_types(shown: list[str]) -> None:
    """Shapes the check does not cover yield None (the answer is then not checked, never blamed)."""
    examples = example_arguments(shown)
    assert examples is not None
    assert argument_types(examples) is None


@pytest.mark.parametrize(
    ("program", "reason"),
    [
        pytest.param("import os\ndef f(x):\n    return x", "imports os", id="impure-import"),
        pytest.param("def f(x):\n    print(x)\n    return x", "calls print", id="print"),
        pytest.param("def f(x):\n    return hash(x)", "calls hash", id="nondeterministic"),
        pytest.param("def f(x):\n    return " + " + ".join(["x"] * 200), "AST nodes > 300", id="too-large"),
        pytest.param("def f(x) return x", "does not parse", id="syntax"),
    ],
)
def test_only_small_pure_programs_are_checked(program: str, reason: str) -> None:
    """Impure, large or unparsable programs are named with the reason; pure ones pass."""
    assert any(reason in found for found in impurity([("answer", program)], 300))
    assert impurity([("answer", "import math\ndef f(x):\n    return math.floor(x) * 2")], 300) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(answer("def f(x):\n    print(x)\n    return x * 2"), "calls print", id="impure"),
        pytest.param(answer(REFERENCE, inputs=["x=1"], outputs=["2"]), "not plain literal", id="kwargs"),
        pytest.param(answer(REFERENCE, inputs=["1j"], outputs=["2j"]), "not plain literal", id="complex"),
        pytest.param(answer(REFERENCE, "def g(x):\n    return x"), "are rejected", id="no-f-in-reference"),
    ],
)
def test_answers_that_cannot_be_checked_get_an_audit_finding(body: dict[str, Any], message: str) -> None:
    """When the check does not apply, an audit finding says why; it never vetoes."""
    planned = plan(0, Answer.model_validate(body), formal_policy())
    assert isinstance(planned, Decision)
    [finding] = planned.findings
    assert (finding.rule_id, finding.mode) == (RULE_ID, "audit")
    assert message in finding.message
    assert finding.message.startswith("not checked: ")


def test_a_plan_is_one_formal_job_within_the_budget() -> None:
    """The search job carries both programs and the argument types; its limits are the budget."""
    planned = plan(2, Answer.model_validate(answer(TRAPDOOR)), formal_policy())
    assert isinstance(planned, FormalProbe)
    spec = planned.search()
    assert spec.job["kind"] == "formal"
    assert (spec.job["reference"], spec.job["program"], spec.job["types"]) == (REFERENCE, TRAPDOOR, ["int"])
    assert spec.job["search_seconds"] < BUDGET
    assert spec.limits.wall_time_seconds == spec.limits.cpu_time_seconds == BUDGET
    assert planned.search(against_itself=True).job["program"] == REFERENCE


def test_formal_jobs_go_to_the_formal_zygote() -> None:
    """Only a formal job is forked from the zygote that loads CrossHair; ordinary jobs never are."""
    policy = formal_policy()
    formal = fork_request(RunSpec(job={"kind": "formal"}, limits=Limits()), policy, "r1")
    plain = fork_request(RunSpec(job={"kind": "script", "code": "print(1)"}, limits=Limits()), policy, "r2")
    assert formal.header["zygote"] == "formal"
    assert "zygote" not in plain.header


def test_the_search_message_never_claims_a_proof() -> None:
    """No finding message of the check says proved/verified/equivalent: a search finds, it never proves."""
    assert no_counterexample(5.0) == "no counterexample found within 5 s"
    assert no_counterexample(2.5) == "no counterexample found within 2.5 s"
    root = Path(__file__).resolve().parent.parent / "sandboxd"
    messages: list[str] = []
    for module in (root / "azr" / "equivalence.py", root / "watchdog" / "equivalence.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in {"finding", "_not_checked"}:
                for part in ast.walk(node):
                    if isinstance(part, ast.Constant) and isinstance(part.value, str):
                        messages.append(part.value)
            elif isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "message":
                messages.extend(
                    p.value
                    for p in ast.walk(node)
                    if isinstance(p, ast.Constant) and isinstance(p.value, str)
                )
    assert len(messages) > 8
    assert [m for m in messages if FORBIDDEN_WORDS.search(m)] == []


def _result(values: list[Any], status: Status = Status.OK) -> RunResult:
    frame = ResultFrame("ok", None, False, 0, non_canonical=False, encode_error=None, values=tuple(values))
    return RunResult(status=status, frame=frame)


def test_reports_from_the_sandbox_are_validated() -> None:
    """The report is model-adjacent data: anything but the exact shape is a failure, not a pass."""
    good = ["d", [[["s", "status"], ["s", "searched"]], [["s", "paths"], ["i", "3"]]]]
    report = read_report(_result([good]))
    assert isinstance(report, Report)
    assert (report.status, report.paths, report.counterexamples) == ("searched", 3, [])
    forged = ["d", [[["s", "status"], ["s", "proved"]]]]
    assert read_report(_result([forged])) == "a malformed report"
    assert read_report(_result([])) == "no report in the result frame"
    assert read_report(RunResult(status=Status.TIMEOUT)) == "timeout"


def test_counterexample_inputs_are_reparsed_as_literals() -> None:
    """Candidate inputs are parsed here and re-rendered; a non-literal (nan, a call) is dropped."""
    side = {"returns": "1", "raises": None}
    report = Report.model_validate(
        {
            "status": "searched",
            "counterexamples": [
                {"args": ["12345"], "reference": side, "answer": side},
                {"args": ["nan"], "reference": side, "answer": side},
                {"args": ["__import__('os')"], "reference": side, "answer": side},
                {"args": ["[1,  2]", "'a'"], "reference": side, "answer": side},
            ],
        }
    )
    assert candidate_texts(report) == ["12345", "[1, 2], 'a'"]


def _report(**fields: Any) -> RunResult:
    return _result([encode_value({"status": "searched", **fields})])


def encode_value(value: Any) -> Any:
    """The runner's canonical encoding of a plain value (what a child puts in its frame)."""
    return json.loads(Encoder().to_json(value))


def _calls(*values: int) -> RunResult:
    return _result([encode_value(("ok", value, repr(value))) for value in values])


SIDE = {"returns": "1", "raises": None}


@pytest.mark.parametrize(
    ("result", "mode", "message"),
    [
        pytest.param(
            _report(paths=1, exhausted=True), "audit", "no counterexample found within 4 s", id="nothing"
        ),
        pytest.param(
            _result([encode_value({"status": "unavailable", "error": "ModuleNotFoundError"})]),
            "warn",
            "not checked: the runner image has no CrossHair/z3 (rebuild it: sandboxd image build)",
            id="no-toolchain",
        ),
        pytest.param(
            _result([encode_value({"status": "not_defined", "program": "answer", "error": "NameError"})]),
            "enforce",
            "the answer does not define f inside the check",
            id="answer-undefined",
        ),
        pytest.param(
            _result([encode_value({"status": "not_defined", "program": "reference", "error": "NameError"})]),
            "audit",
            "not checked: the reference program does not define f inside the check (NameError)",
            id="reference-undefined",
        ),
        pytest.param(
            RunResult(status=Status.INFRASTRUCTURE_ERROR),
            "warn",
            "not checked: the formal run failed (infrastructure_error)",
            id="lost-sandbox",
        ),
    ],
)
def test_final_outcomes_of_a_search(result: RunResult, mode: str, message: str) -> None:
    """Each way a search can end is a typed finding of the formal rule, never a silent pass."""
    decision = interpret(result, BUDGET, "enforce")
    assert isinstance(decision, Decision)
    [found] = decision.findings
    assert (found.rule_id, found.mode, found.message) == (RULE_ID, mode, message)


def test_failed_and_fruitful_searches_need_more_runs() -> None:
    """A run that died is attributed; candidates are confirmed by running both programs again."""
    assert interpret(RunResult(status=Status.TIMEOUT), BUDGET, "enforce") == Failed("timeout")
    step = interpret(
        _report(paths=3, counterexamples=[{"args": ["12345"], "reference": SIDE, "answer": SIDE}]),
        BUDGET,
        "warn",
    )
    assert isinstance(step, Candidates)
    assert (step.texts, step.searched) == (["12345"], "CrossHair explored 3 paths in 0.00 s")


def test_only_a_difference_that_reproduces_is_a_finding() -> None:
    """Confirmation compares values here: a reproduced difference is evidence, a phantom one is audit."""
    candidates = Candidates(["12345"], "CrossHair explored 3 paths in 0.01 s")
    [real] = confirm(candidates, _calls(24690), _calls(0), BUDGET, "warn").findings
    assert (real.mode, real.evidence) == ("warn", "f(12345): reference returned 24690, answer returned 0")
    [phantom] = confirm(candidates, _calls(24690), _calls(24690), BUDGET, "enforce").findings
    assert phantom.mode == "audit"
    assert phantom.message.startswith("no counterexample found within 4 s: ")


def test_a_runner_without_crosshair_reports_it_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the toolchain (as in the daemon's own environment) the job reports, it does not crash."""
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "crosshair" not in p])
    monkeypatch.setattr(formal, "TARGET", "/nonexistent/sandboxd-formal")
    assert formal.search(
        {"reference": REFERENCE, "program": REFERENCE, "types": ["int"], "search_seconds": 1}
    ) == {
        "status": "unavailable",
        "error": "ModuleNotFoundError",
    }


def test_the_toolchain_is_staged_read_only(tmp_path: Path) -> None:
    """The Dockerfile context gets the toolchain as 0644 files, and the directory even without wheels."""
    tree = tmp_path / "tree"
    (tree / "z3" / "lib").mkdir(parents=True)
    (tree / "z3" / "lib" / "libz3.so").write_bytes(b"ELF")
    (tree / "z3" / "lib" / "libz3.so").chmod(0o755)
    (tree / ".complete").write_text("pins")
    wheelhouse.stage(tree, tmp_path / "ctx")
    staged = tmp_path / "ctx" / "opt" / "sandboxd-formal"
    assert [p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()] == ["z3/lib/libz3.so"]
    assert (staged / "z3" / "lib" / "libz3.so").stat().st_mode & 0o777 == 0o644
    wheelhouse.stage(None, tmp_path / "empty")
    assert (tmp_path / "empty" / "opt" / "sandboxd-formal").is_dir()


def test_the_image_tag_covers_the_pinned_wheels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Changing a CrossHair/z3 pin changes the runner image's tag, so the image is rebuilt."""
    files = {"/opt/sandboxd/x.py": b"x"}
    before = image._tag_for(files)
    pins = (*wheelhouse.WHEELS[:-1], ("mypy-extensions", "1.1.0", "0" * 64))
    monkeypatch.setattr(wheelhouse, "WHEELS", pins)
    if wheelhouse.supported():
        assert image._tag_for(files) != before
    assert all("--hash=sha256:" in line for line in wheelhouse.requirements().splitlines())


def test_policy_fields_are_validated(tmp_path: Path) -> None:
    """A bad budget or cap in a sandbox policy fails loading with the file and the field."""
    shutil.copy(BUILTIN_POLICIES / "default.yaml", tmp_path / "default.yaml")
    (tmp_path / "bad.yaml").write_text(
        "schema_version: 1\nkind: sandbox\nname: bad\nextends: default\ndescription: x\n"
        "watchdog:\n  formal_check: true\n  formal_budget_seconds: 0\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigurationError, match=r"(?s)bad\.yaml.*watchdog\.formal_budget_seconds"):
        load_policies(tmp_path)
    assert load_policies(BUILTIN_POLICIES)["default"].watchdog.formal_check is False  # opt-in


# With Docker: the image, the formal job in a real container, then the check over HTTP.

IMAGE_PROBE = """\
import json, os, sys
plain = True
try:
    import crosshair
except ImportError:
    plain = False
sys.path.append("/opt/sandboxd-formal")
import crosshair.diff_behavior, z3
solver = z3.Solver()
x = z3.Int("x")
solver.add(x * 2 == 24690)
path = os.path.join(os.path.dirname(z3.__file__), "lib", "libz3.so")
stat = os.stat(path)
print(json.dumps({"plain": plain, "sat": str(solver.check()), "model": str(solver.model()[x]),
                  "owner": [stat.st_uid, stat.st_mode & 0o777], "pyc": crosshair.diff_behavior.__cached__ is not None}))
"""


@pytest.mark.docker
def test_the_image_ships_crosshair_and_z3_off_the_default_path() -> None:
    """The toolchain is in the image, root-owned and read-only, importable only from its own directory."""
    if not wheelhouse.supported():
        pytest.skip("no pinned CrossHair/z3 wheels for this architecture")
    tag = image.build()
    run = ["docker", "run", "--rm", "--network", "none", "--read-only", tag, "python3", "-c", IMAGE_PROBE]
    done = subprocess.run(run, capture_output=True, text=True, timeout=120, check=True)
    facts = json.loads(done.stdout)
    assert facts == {"plain": False, "sat": "sat", "model": "12345", "owner": [0, 0o644], "pyc": True}


class JobRunner:
    """One real Service (default policy, fresh containers) on its own event loop, for raw runner jobs."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="formal-jobs", daemon=True)
        self.thread.start()
        settings = Settings(instance=f"test-formal-{uuid.uuid4().hex[:8]}", warm_pools=False)
        self.service = Service(settings)
        self.call(self.service.start())

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=300)

    def run(self, jobs: list[dict[str, Any]], seconds: float = BUDGET) -> list[RunResult]:
        policy = self.service.policies["default"]
        limits = policy.limits.model_copy(update={"wall_time_seconds": seconds, "cpu_time_seconds": seconds})
        results: list[RunResult] = self.call(
            self.service.run(policy, [RunSpec(job=j, limits=limits) for j in jobs])
        )
        return results

    def close(self) -> None:
        self.call(self.service.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@pytest.fixture(scope="module")
def jobs() -> Iterator[JobRunner]:
    runner = JobRunner()
    yield runner
    runner.close()


def formal_job(program: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "formal",
        "reference": REFERENCE,
        "program": program,
        "types": ["int"],
        "search_seconds": 2.0,
        **extra,
    }


@pytest.mark.docker
def test_crosshair_runs_only_in_formal_children(jobs: JobRunner) -> None:
    """A formal child searches with CrossHair; an ordinary child has neither CrossHair nor its path."""
    probe = (
        "import sys\nprint('crosshair' in sys.modules, '/opt/sandboxd-formal' in sys.path)\nimport crosshair"
    )
    found, plain = jobs.run([formal_job(TRAPDOOR), {"kind": "script", "code": probe}])
    report = read_report(found)
    assert isinstance(report, Report), (found.status, found.stderr)
    assert report.status == "searched"
    assert report.counterexamples[0].args == ["12345"]
    assert (report.counterexamples[0].reference.returns, report.counterexamples[0].answer.returns) == (
        "24690",
        "0",
    )
    assert plain.stdout == "False False\n"
    assert "ModuleNotFoundError: No module named 'crosshair'" in plain.stderr


@pytest.mark.docker
@pytest.mark.parametrize(
    ("program", "status"),
    [
        pytest.param(
            "import socket\nsocket.socket()\ndef f(x):\n    return x", "sandbox_violation", id="socket"
        ),
        pytest.param("import os\nos.fork()\ndef f(x):\n    return x", "sandbox_violation", id="fork"),
        pytest.param(
            "import itertools\ndef f(x):\n    if x == 777:\n        any(itertools.repeat(0))\n    return x * 2",
            "timeout",
            id="c-level-loop-on-a-symbolic-branch",
        ),
        pytest.param(
            "def f(x):\n    if x == 777:\n        while True:\n            pass\n    return x * 2",
            "timeout",
            id="python-loop-on-a-symbolic-branch",
        ),
    ],
)
def test_formal_children_keep_the_lock_down(jobs: JobRunner, program: str, status: str) -> None:
    """Model code inside CrossHair meets the same seccomp filter and wall-clock kill as any run."""
    started = time.monotonic()
    [result] = jobs.run([formal_job(program)], seconds=3.0)
    assert result.status.value == status, (result.status, result.stderr[-500:])
    assert result.wall_time_seconds < 3.0 + 1.5
    assert time.monotonic() - started < 60


@pytest.mark.docker
@pytest.mark.parametrize(
    ("reference", "program", "types", "found"),
    [
        pytest.param(
            "def f(s):\n    return s[::-1]",
            "def f(s):\n    if len(s) > 3 and s[0] == 'q':\n        return s\n    return s[::-1]",
            ["str"],
            r"^'q",
            id="str",
        ),
        pytest.param(
            "def f(x):\n    return x * 2",
            "def f(x):\n    return x * 2 if x < 1e6 else 0.0",
            ["float"],
            r"^\d",
            id="float",
        ),
    ],
)
def test_strings_and_floats_are_searched_too(
    jobs: JobRunner, reference: str, program: str, types: list[Any], found: str
) -> None:
    """CrossHair reaches conditions on symbolic strings and floats; candidates come back as literals."""
    [result] = jobs.run([formal_job(program, reference=reference, types=types, search_seconds=3.0)])
    report = read_report(result)
    assert isinstance(report, Report), (result.status, result.stderr[-500:])
    texts = candidate_texts(report)
    assert texts
    assert re.search(found, texts[0]), texts


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A real sandboxd whose ``formal`` policy turns on both semantic checks."""
    policies = tmp_path_factory.mktemp("formal-policies")
    shutil.copy(BUILTIN_POLICIES / "default.yaml", policies / "default.yaml")
    (policies / "formal.yaml").write_text(
        "schema_version: 1\nkind: sandbox\nname: formal\nextends: default\ndescription: formal check on\n"
        "pool: {warm_containers: 1}\n"
        f"watchdog:\n  enabled: true\n  induction_samples: 20\n  formal_check: true\n"
        f"  formal_budget_seconds: {BUDGET}\n",
        encoding="utf-8",
    )
    settings = Settings(instance=f"test-formal-{uuid.uuid4().hex[:8]}", policies_dir=policies)
    with running_server(settings) as url, httpx.Client(base_url=url, timeout=180.0) as client:
        yield client


def check(http: httpx.Client, answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return posted_results(http, "/v1/azr/check", {"policy": "formal", "answers": answers})


def findings(result: dict[str, Any], rule: str = RULE_ID) -> list[dict[str, Any]]:
    return [f for f in result["watchdog"]["findings"] if f["rule_id"] == rule]


@pytest.mark.docker
def test_a_trapdoor_the_sampler_misses_is_vetoed_with_the_counterexample(http: httpx.Client) -> None:
    """``if x == 12345: return 0`` matches every shown pair and every sampled input; CrossHair finds it."""
    [result] = check(http, [answer(TRAPDOOR)])
    assert (result["correct"], result["reward"], result["reason"]) == (False, 0.0, "vetoed"), result
    [formal] = findings(result)
    assert formal["mode"] == "enforce"
    assert formal["evidence"] == "f(12345): reference returned 24690, answer returned 0"
    [sampled] = findings(result, "semantic.induction-hardcoding")
    assert (sampled["mode"], sampled["message"]) == (
        "audit",
        "no counterexample found in 20 generated inputs",
    )


@pytest.mark.docker
@pytest.mark.parametrize(
    "program",
    [
        pytest.param("def f(x):\n    return x + x", id="x-plus-x"),
        pytest.param("def f(n):\n    return n << 1", id="shift"),
    ],
)
def test_an_equivalent_rewrite_gets_no_counterexample_and_keeps_its_reward(
    http: httpx.Client, program: str
) -> None:
    """No counterexample: an audit finding that says so within the budget, never a proof."""
    started = time.monotonic()
    [result] = check(http, [answer(program)])
    assert (result["correct"], result["reward"], result["reason"]) == (True, 1.0, "ok"), result
    assert result["watchdog"]["decision"] == "allow"
    [formal] = findings(result)
    assert (formal["mode"], formal["message"]) == ("audit", f"no counterexample found within {BUDGET:g} s")
    assert formal["evidence"].startswith("CrossHair explored ")
    assert not FORBIDDEN_WORDS.search(formal["message"] + formal["evidence"])
    assert time.monotonic() - started < 60


@pytest.mark.docker
def test_an_answer_that_hangs_the_search_is_blamed_within_the_budget(http: httpx.Client) -> None:
    """A C-level loop on a branch only the search reaches: killed at the budget, a typed veto, no 500."""
    hang = "import itertools\ndef f(x):\n    if x == 777:\n        any(itertools.repeat(0))\n    return x * 2"
    started = time.monotonic()
    [result] = check(http, [answer(hang)])
    elapsed = time.monotonic() - started
    assert result["reason"] == "vetoed", result
    [formal] = findings(result)
    assert formal["mode"] == "enforce"
    assert formal["message"] == f"the check failed on the answer: timeout within {BUDGET:g} s"
    assert elapsed < 3 * BUDGET + 30  # search, the reference's own search, containers


@pytest.mark.docker
def test_formal_decisions_are_counted(http: httpx.Client) -> None:
    """A formal veto increments sandboxd_watchdog_decisions_total for its rule."""

    def vetoes() -> float:
        found = re.search(
            r'^sandboxd_watchdog_decisions_total\{decision="veto",rule="semantic.formal-equivalence"\} (\S+)$',
            http.get("/metrics").text,
            re.MULTILINE,
        )
        return float(found.group(1)) if found else 0.0

    before = vetoes()
    check(http, [answer("def f(x):\n    return 0 if x == -4242 else 2 * x")])
    assert vetoes() == before + 1
