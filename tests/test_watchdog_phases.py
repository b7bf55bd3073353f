"""Structural patterns (ast-grep), post-execution rules, and the AZR banned-word pack (pure, no Docker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandboxd.watchdog.checker import check_source
from sandboxd.watchdog.decision import DecisionKind
from sandboxd.watchdog.outcome import Outcome
from sandboxd.watchdog.packs import DEFAULT_PACK_DIR, PackError, default_packs, load_packs, parse_pack
from sandboxd.watchdog.postexec import check_outcome, has_post_checks
from trainer_client.azr import uses_banned

DEFAULTS = default_packs()
HEAD = "schema_version: 1\nkind: watchdog\nname: demo\ndescription: d\nrules:\n"


def pack(rules: str):  # type: ignore[no-untyped-def]
    return parse_pack(HEAD + rules, "demo.yaml")


# Structural patterns.

PATTERN_RULE = """\
  - id: demo.print-outside-main
    description: prints outside main()
    match:
      pattern: ["print($$$ARGS)"]
      not_pattern: ["def main(): $$$BODY"]
    tests:
      invalid: ["print(1)"]
      valid: ["def main():\\n    print(1)"]
"""


def test_pattern_fires_with_location_and_respects_not_pattern() -> None:
    """A pattern hit is a finding at its line; a hit inside a not_pattern node is no evidence."""
    demo = pack(PATTERN_RULE)
    decision = check_source("def main():\n    print(1)\n\nprint(2)\n", [demo], "solver")
    [finding] = decision.findings
    assert (finding.rule_id, finding.line, finding.col) == ("demo.print-outside-main", 4, 0)
    assert "print(2)" in finding.evidence
    assert check_source("def main():\n    print(1)\n", [demo], "solver").decision == DecisionKind.ALLOW


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(
            "class A:\n    __eq__ = lambda self, other: True\ndef f(x):\n    return A()", id="eq-lambda"
        ),
        pytest.param(
            "def f(x):\n    return type('A', (int,), {'__eq__': lambda s, o: True})(x)", id="type-3-args"
        ),
        pytest.param("class R(str):\n    __repr__ = str.upper", id="repr-assigned"),
    ],
)
def test_dynamic_overrides_are_vetoed_for_solvers(code: str) -> None:
    """Overrides the method facts cannot see are vetoed by the structural rule hacking.dynamic-override."""
    decision = check_source(code, DEFAULTS, "solver", "induction")
    assert decision.decision == DecisionKind.VETO
    assert "hacking.dynamic-override" in {f.rule_id for f in decision.findings}
    assert "hacking.comparison-override" not in {f.rule_id for f in decision.findings}  # no def __eq__


def test_type_with_one_argument_is_not_a_class_factory() -> None:
    """``type(x)`` is ordinary code: the three-argument pattern does not match it."""
    decision = check_source("def f(x):\n    return type(x).__name__", DEFAULTS, "solver", "induction")
    assert "hacking.dynamic-override" not in {f.rule_id for f in decision.findings}


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        pytest.param("$$$", "invalid ast-grep pattern", id="standalone-multi"),
        pytest.param("def (:", "does not parse as Python", id="unparsable"),
    ],
)
def test_bad_patterns_name_file_line_and_field(pattern: str, message: str) -> None:
    """An unusable pattern fails loading at its file, line and field."""
    rules = PATTERN_RULE.replace('pattern: ["print($$$ARGS)"]', f"pattern: [{pattern!r}]")
    with pytest.raises(PackError) as raised:
        pack(rules)
    [problem] = raised.value.problems
    assert (problem.file, problem.line, problem.field) == ("demo.yaml", 9, "rules[0].match.pattern[0]")
    assert message in problem.message


# Post-execution rules.

POST_RULE = """\
  - id: demo.slow
    description: burnt CPU or hit the walls
    phase: post
    mode: enforce
    match:
      statuses: [sandbox_violation]
      stderr_regex: ['PermissionError']
      max_cpu_time_seconds: 2.0
    tests:
      invalid: [{status: sandbox_violation}, {cpu_time_seconds: 3.0}]
      valid: [{status: ok, cpu_time_seconds: 1.0}]
"""


@pytest.mark.parametrize(
    ("outcome", "evidence"),
    [
        pytest.param(Outcome("sandbox_violation"), "status sandbox_violation", id="status"),
        pytest.param(
            Outcome("runtime_error", stderr="x\nPermissionError: no"), "stderr matched", id="stderr"
        ),
        pytest.param(Outcome("ok", cpu_time_seconds=2.5), "cpu_time_seconds=2.5 > 2.0", id="cpu-cap"),
    ],
)
def test_post_rules_judge_the_outcome(outcome: Outcome, evidence: str) -> None:
    """A post rule fires on a status, a stderr regex or a usage cap, and an enforce rule vetoes."""
    decision = check_outcome(outcome, [pack(POST_RULE)], "proposer")
    assert decision.decision == DecisionKind.VETO
    assert evidence in decision.findings[0].evidence


def test_post_rules_never_run_before_execution() -> None:
    """Static screening ignores post rules, and post screening ignores static rules."""
    demo = pack(POST_RULE + PATTERN_RULE.replace("demo.print-outside-main", "demo.p"))
    assert check_source("print(1)", [demo], "solver").findings[0].rule_id == "demo.p"
    assert check_outcome(Outcome("ok"), [demo], "solver").decision == DecisionKind.ALLOW
    assert has_post_checks([demo])
    assert not has_post_checks([pack(PATTERN_RULE)])


@pytest.mark.parametrize(
    ("rules", "line", "field", "message"),
    [
        pytest.param(
            POST_RULE.replace("      statuses: [sandbox_violation]\n", "      imports: [os]\n"),
            11,
            "rules[0].match.imports",
            "imports is not a post fact",
            id="static-fact-in-post-rule",
        ),
        pytest.param(
            PATTERN_RULE.replace(
                '      not_pattern: ["def main(): $$$BODY"]\n', "      statuses: [timeout]\n"
            ),
            10,
            "rules[0].match.statuses",
            "statuses is not a static fact",
            id="post-fact-in-static-rule",
        ),
        pytest.param(
            POST_RULE.replace("valid: [{status: ok, cpu_time_seconds: 1.0}]", 'valid: ["print(1)"]'),
            16,
            "rules[0].tests.valid[0]",
            "a post rule's test case is an outcome mapping",
            id="program-as-post-test",
        ),
        pytest.param(
            POST_RULE.replace("statuses: [sandbox_violation]", "statuses: [exploded]"),
            11,
            "rules[0].match.statuses[0]",
            "Input should be",
            id="unknown-status",
        ),
    ],
)
def test_phase_mistakes_name_file_line_and_field(rules: str, line: int, field: str, message: str) -> None:
    """A fact or test case of the wrong phase is an error at its file, line and field."""
    with pytest.raises(PackError) as raised:
        pack(rules)
    found = [(p.line, p.field) for p in raised.value.problems]
    assert (line, field) in found, found
    assert any(message in p.message for p in raised.value.problems)


def test_shipped_post_pack_warns_on_violations_and_audits_exhaustion() -> None:
    """The default post-execution pack warns on a sandbox violation and only audits a timeout."""
    assert check_outcome(Outcome("sandbox_violation"), DEFAULTS, "solver").decision == DecisionKind.WARN
    timeout = check_outcome(Outcome("timeout"), DEFAULTS, "solver")
    assert timeout.decision == DecisionKind.ALLOW
    assert [f.rule_id for f in timeout.findings] == ["post.resource-exhaustion"]
    assert check_outcome(Outcome("ok", stdout="hi"), DEFAULTS, "solver").findings == ()


# The AZR banned-word pack agrees with AZR's own filter.

AZR_PROGRAMS = [
    "import random",
    "import os.path",
    "import os",
    "from os import path",
    "import sys",
    "from numpy import random",
    "from datetime import datetime",
    "import logging.handlers",
    "from collections import time",
    "import timeit",
    "import calendar",
    "import hashlib as h",
    "from math import sqrt",
    "import numpy.random.mtrand",
    "def f(x):\n    return x",
]


@pytest.mark.parametrize("code", AZR_PROGRAMS)
def test_azr_pack_matches_azr_filter(code: str) -> None:
    """azr-compat vetoes exactly what AZR's contains_banned_imports (trainer_client.azr.uses_banned) bans."""
    [azr] = [p for p in load_packs([DEFAULT_PACK_DIR]) if p.name == "azr-compat"]
    words = [
        "logging",
        "random",
        "multiprocessing",
        "pebble",
        "subprocess",
        "threading",
        "datetime",
        "time",
        "hashlib",
        "hmac",
        "bcrypt",
        "os.sys",
        "os.path",
        "sys.exit",
        "os.environ",
        "calendar",
        "datetime",
    ]
    vetoed = check_source(code, [azr], "proposer").decision == DecisionKind.VETO
    assert vetoed == uses_banned(code, words)


def test_solver_role_vetoes_no_more_real_programs_than_the_proposer_role() -> None:
    """The structural and solver-only rules veto none of the AZR/CRUXEval programs beyond the two known rows."""
    data = Path(__file__).parent / "data"
    sources = [
        json.loads(line)["snippet"]
        for path in sorted((data / "azr").glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    sources += [
        json.loads(line)["code"] for line in (data / "cruxeval" / "cruxeval.jsonl").read_text().splitlines()
    ]
    fired = {
        f.rule_id for source in sources for f in check_source(source, DEFAULTS, "solver", "induction").vetoing
    }
    assert fired == {"capability.import", "capability.io"}
