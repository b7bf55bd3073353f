"""Post-execution checks and the induction hard-coding detector, in the request path (real containers)."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import posted_results

from sandboxd.azr.hardcoding import Probe, plan_probe
from sandboxd.azr.schemas import Answer
from sandboxd.policy import load_policies
from sandboxd.settings import BUILTIN_POLICIES, Settings
from sandboxd.testing import running_server
from sandboxd.watchdog.decision import Decision
from sandboxd.watchdog.induction import example_arguments, generate
from sandboxd.watchdog.packs import DEFAULT_PACK_DIR

# Pure: generated inputs.


@pytest.mark.parametrize(
    ("shown", "kind"),
    [
        pytest.param(["1", "3"], int, id="int"),
        pytest.param(["'abc'", "'x'"], str, id="str"),
        pytest.param(["[1, 2, 3]", "[]"], list, id="list"),
        pytest.param(["{'a': 1}"], dict, id="dict"),
        pytest.param(["(1, 'b')"], tuple, id="tuple"),
    ],
)
def test_inputs_follow_the_types_of_the_examples(shown: list[str], kind: type) -> None:
    """Generated inputs have the examples' types, are new, distinct and the same on every call."""
    examples = example_arguments(shown)
    assert examples is not None
    drawn = generate(examples, 10)
    assert len(drawn) == 10
    assert len(set(drawn)) == 10
    assert not set(drawn) & set(shown)
    assert all(isinstance(args[0], kind) for args in map(lambda t: example_arguments([t])[0], drawn))  # type: ignore[index]
    assert generate(examples, 10) == drawn  # derandomized: reproducible


def test_non_literal_inputs_are_not_generated_from() -> None:
    """Keyword arguments or calls are not plain literals: the detector does not apply."""
    assert example_arguments(["x=1"]) is None
    assert example_arguments(["int('3')"]) is None


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        pytest.param(
            {"reference_program": "def f(x) return x"}, "the reference program is rejected", id="bad-ref"
        ),
        pytest.param({"inputs": ["x=1"], "outputs": ["1"]}, "not plain literal arguments", id="kwargs"),
        pytest.param({"inputs": ["None"], "outputs": ["1"]}, "no new inputs", id="nothing-new"),
    ],
)
def test_probes_that_cannot_run_are_audit_findings(answer: dict[str, Any], message: str) -> None:
    """When the detector cannot probe, it says why in an audit finding and never vetoes."""
    body = {"task_type": "induction", "answer": REFERENCE, "reference_program": REFERENCE, **answer}
    body.setdefault("inputs", INPUTS)
    body.setdefault("outputs", OUTPUTS)
    planned = plan_probe(0, Answer.model_validate(body), load_policies(BUILTIN_POLICIES)["default"])
    assert isinstance(planned, Decision)
    [finding] = planned.findings
    assert finding.mode == "audit"
    assert message in finding.message


def test_probe_runs_both_programs_on_the_same_generated_inputs() -> None:
    """A probe is two ``calls`` jobs with the same generated inputs, capped by the detector's budget."""
    policy = load_policies(BUILTIN_POLICIES)["default"]
    planned = plan_probe(3, Answer.model_validate(induction("def f(x):\n    return 2 * x + 1")), policy)
    assert isinstance(planned, Probe)
    assert planned.index == 3
    assert len(planned.texts) == policy.watchdog.induction_samples
    assert planned.reference.job["program"] == REFERENCE
    assert planned.reference.job["calls"] == planned.answer.job["calls"] == planned.texts
    assert planned.answer.limits.wall_time_seconds <= policy.watchdog.induction_budget_seconds


# With Docker: a real server.

REFERENCE = "def f(x):\n    return x * 2 + 1"
INPUTS, OUTPUTS = ["1", "3", "5"], ["3", "7", "11"]
STRICT_POST = """\
schema_version: 1
kind: watchdog
name: strict-post
description: Test-only post-execution rules in enforce mode.
rules:
  - id: test.leak-marker
    description: printed the leak marker
    phase: post
    mode: enforce
    match:
      stdout_regex: ['LEAK-[0-9]+']
    tests:
      invalid: [{stdout: "LEAK-1"}]
      valid: [{stdout: "fine"}]
"""


def policy_text(name: str, watchdog: str) -> str:
    return (
        f"schema_version: 1\nkind: sandbox\nname: {name}\nextends: default\n"
        f"description: test policy {name}\nwatchdog:\n  enabled: true\n{watchdog}"
    )


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A real sandboxd with ``semantic`` (default packs, detector on) and ``strict`` (enforce post rules)."""
    root = tmp_path_factory.mktemp("semantic")
    packs = root / "packs"
    packs.mkdir()
    (packs / "strict-post.yaml").write_text(STRICT_POST, encoding="utf-8")
    shutil.copy(DEFAULT_PACK_DIR / "post-execution.yaml", packs / "post-execution.yaml")
    policies = root / "policies"
    policies.mkdir()
    for source in BUILTIN_POLICIES.glob("*.yaml"):
        shutil.copy(source, policies / source.name)
    (policies / "semantic.yaml").write_text(
        policy_text("semantic", "  induction_samples: 20\n  induction_budget_seconds: 2\n"), encoding="utf-8"
    )
    (policies / "strict.yaml").write_text(policy_text("strict", f"  packs_dir: {packs}\n"), encoding="utf-8")
    settings = Settings(instance=f"test-sem-{uuid.uuid4().hex[:8]}", policies_dir=policies)
    with running_server(settings) as url, httpx.Client(base_url=url, timeout=180.0) as client:
        yield client


def check(
    http: httpx.Client, answers: list[dict[str, Any]], policy: str = "semantic"
) -> list[dict[str, Any]]:
    return posted_results(http, "/v1/azr/check", {"policy": policy, "answers": answers})


def induction(answer: str, reference: str | None = REFERENCE, **extra: Any) -> dict[str, Any]:
    body = {"task_type": "induction", "answer": answer, "inputs": INPUTS, "outputs": OUTPUTS, **extra}
    if reference is not None:
        body["reference_program"] = reference
    return body


def semantic(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in result["watchdog"]["findings"] if f["rule_id"] == "semantic.induction-hardcoding"]


@pytest.mark.docker
@pytest.mark.parametrize(
    ("answer", "evidence"),
    [
        pytest.param(
            "def f(x):\n    return {1: 3, 3: 7, 5: 11}[x]", r"answer raised KeyError", id="lookup-table"
        ),
        pytest.param(
            "def f(x):\n    return {1: 3, 3: 7, 5: 11}.get(x, 0)", r"answer returned 0", id="lookup-default"
        ),
        pytest.param(
            "def f(x):\n    if x == 1:\n        return 3\n    if x == 3:\n        return 7\n    return 11",
            r"answer returned (3|7|11)\b",
            id="if-chain",
        ),
        pytest.param(
            "def f(x):\n    if x in (1, 3, 5):\n        return 2 * x + 1\n    while True:\n        pass",
            r"f\(.*\) = returned",
            id="loops-off-the-table",
        ),
    ],
)
def test_memorising_answers_are_vetoed_with_a_counterexample(
    http: httpx.Client, answer: str, evidence: str
) -> None:
    """An answer that matches the shown pairs but not the reference is vetoed, with the input as evidence."""
    [result] = check(http, [induction(answer)])
    assert (result["correct"], result["reward"], result["reason"]) == (False, 0.0, "vetoed"), result
    assert result["watchdog"]["decision"] == "veto"
    [finding] = semantic(result)
    assert finding["mode"] == "enforce"
    assert re.search(evidence, finding["evidence"]), finding["evidence"]
    assert finding["evidence"].startswith("f(")


@pytest.mark.docker
@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(REFERENCE, id="the-reference-itself"),
        pytest.param("def f(n):\n    return n + n + 1", id="equivalent-rewrite"),
    ],
)
def test_the_reference_and_equivalent_answers_pass(http: httpx.Client, answer: str) -> None:
    """The reference program (and a rewrite of it) keeps reward 1; the finding says no counterexample."""
    [result] = check(http, [induction(answer)])
    assert (result["correct"], result["reward"], result["reason"]) == (True, 1.0, "ok"), result
    assert result["watchdog"]["decision"] == "allow"
    [finding] = semantic(result)
    assert finding["mode"] == "audit"
    assert finding["message"] == "no counterexample found in 20 generated inputs"
    assert "proved" not in finding["message"]


@pytest.mark.docker
def test_strings_lists_and_batches(http: httpx.Client) -> None:
    """String inputs are generated from the examples' alphabet; answers in one request are judged apart."""
    reverse = "def f(s):\n    return s[::-1]"
    table = "def f(s):\n    return {'abc': 'cba', 'xy': 'yx'}[s]"
    strings = {"inputs": ["'abc'", "'xy'"], "outputs": ["'cba'", "'yx'"]}
    total = "def f(xs):\n    return sum(xs)"
    lists = {"inputs": ["[1, 2]", "[5]"], "outputs": ["3", "5"]}
    results = check(
        http,
        [
            {"task_type": "induction", "answer": table, "reference_program": reverse, **strings},
            {"task_type": "induction", "answer": reverse, "reference_program": reverse, **strings},
            {
                "task_type": "induction",
                "answer": "def f(xs):\n    return xs[0] + (xs[1] if len(xs) > 1 else 0)",
                "reference_program": total,
                **lists,
            },
            induction("def f(x):\n    return 0"),  # wrong on the shown pairs: no detector run
        ],
    )
    assert [r["reason"] for r in results] == ["vetoed", "ok", "vetoed", "wrong_answer"]
    assert semantic(results[3]) == []


@pytest.mark.docker
def test_without_reference_or_with_a_failing_one_nothing_is_vetoed(http: httpx.Client) -> None:
    """No reference: the detector does not run. A reference that fails: inconclusive, audit only."""
    lookup = "def f(x):\n    return {1: 3, 3: 7, 5: 11}[x]"
    plain, broken = check(http, [induction(lookup, None), induction(lookup, "def f(x):\n    return 1 / 0")])
    assert (plain["reason"], semantic(plain)) == ("ok", [])
    assert broken["reason"] == "ok"
    assert [f["mode"] for f in semantic(broken)] == ["audit"]


@pytest.mark.docker
def test_the_reference_program_never_runs_on_the_trusted_side(http: httpx.Client, tmp_path: Path) -> None:
    """A reference program that would write a host file if executed here leaves no trace on the host."""
    canary = Path("/tmp") / f"sandboxd-canary-{uuid.uuid4().hex}"
    hostile = f"open({str(canary)!r}, 'w').write('ran')\ndef f(x):\n    return x * 2 + 1"
    [result] = check(http, [induction(REFERENCE, hostile)])
    assert not canary.exists()
    assert result["reason"] == "ok"
    assert semantic(result)[0]["mode"] == "audit"  # the write fails in the sandbox: inconclusive


@pytest.mark.docker
def test_detector_decisions_are_counted(http: httpx.Client) -> None:
    """A detector veto increments sandboxd_watchdog_decisions_total for its rule."""

    def vetoes() -> float:
        text = http.get("/metrics").text
        found = re.search(
            r'^sandboxd_watchdog_decisions_total\{decision="veto",rule="semantic.induction-hardcoding"\} (\S+)$',
            text,
            re.MULTILINE,
        )
        return float(found.group(1)) if found else 0.0

    before = vetoes()
    check(http, [induction("def f(x):\n    return {1: 3, 3: 7, 5: 11}[x]")])
    assert vetoes() == before + 1


# Post-execution checks in the request path.


@pytest.mark.docker
def test_post_rule_vetoes_a_run_after_it_ran(http: httpx.Client) -> None:
    """An enforce post rule turns a run that ran into ``vetoed``; its output and usage stay visible."""
    response = http.post(
        "/v1/runs/batch",
        json={"policy": "strict", "runs": [{"code": "print('LEAK-42')"}, {"code": "print('ok')"}]},
    )
    assert response.status_code == 200, response.text
    leaked, fine = response.json()["results"]
    assert leaked["status"] == "vetoed"
    assert leaked["stdout"] == "LEAK-42\n"
    assert leaked["sandbox_id"]
    assert leaked["detail"] == "vetoed by the watchdog: test.leak-marker"
    assert leaked["watchdog"]["findings"][0]["evidence"].startswith("stdout matched")
    assert (fine["status"], fine["watchdog"]["decision"]) == ("ok", "allow")


@pytest.mark.docker
@pytest.mark.parametrize(
    ("code", "status", "rule"),
    [
        pytest.param(
            "open('/etc/passwd', 'a').write('x')",
            "sandbox_violation",
            "post.sandbox-violation",
            id="violation",
        ),
        pytest.param(
            "import os\nos.listdir('/root')", "runtime_error", "post.permission-probe", id="permission"
        ),
    ],
)
def test_post_rules_warn_on_probing_the_walls(http: httpx.Client, code: str, status: str, rule: str) -> None:
    """A sandbox violation, or a permission error in stderr, makes the default post pack warn."""
    body = http.post("/v1/runs", json={"policy": "strict", "code": code}).json()
    assert body["status"] == status, body
    assert body["watchdog"]["decision"] == "warn"
    assert rule in {f["rule_id"] for f in body["watchdog"]["findings"]}


@pytest.mark.docker
def test_post_rules_veto_azr_validate_and_check(http: httpx.Client) -> None:
    """AZR validate and check results are vetoed after execution by an enforce post rule."""
    program = "def f(x):\n    print('LEAK-7')\n    return x"
    response = http.post(
        "/v1/azr/validate",
        json={"policy": "strict", "tasks": [{"task_type": "deduction", "program": program, "inputs": ["1"]}]},
    )
    [validated] = response.json()["results"]
    assert (validated["valid"], validated["reason"]) == (False, "vetoed"), validated
    [checked] = check(
        http,
        [{"task_type": "induction", "answer": program, "inputs": ["1"], "outputs": ["1"]}],
        policy="strict",
    )
    assert (checked["correct"], checked["reward"], checked["reason"]) == (False, 0.0, "vetoed"), checked
