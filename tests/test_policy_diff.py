"""``sandboxd policy diff OLD NEW``: every loosening change is flagged, and the exit code says so."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sandboxd.cli import main
from sandboxd.watchdog.diff import diff_packs, loosening
from sandboxd.watchdog.packs import DEFAULT_PACK_DIR, load_packs, parse_pack

BASE = """\
schema_version: 1
kind: watchdog
name: demo
description: A pack to diff.
lists:
  mods: [os, socket, pickle]
rules:
  - id: demo.import
    description: imports a dangerous module
    mode: enforce
    severity: high
    applies_to:
      roles: [proposer, solver]
    match:
      imports: [$mods]
      pattern: ["type($A, $B, $C)"]
      max_ast_nodes: 4000
    exceptions:
      imports: [os.path]
    tests:
      invalid: ["import socket"]
      valid: ["import math"]
  - id: demo.eval
    description: calls eval
    match:
      calls: [eval]
    tests:
      invalid: ["eval('1')"]
      valid: ["print(1)"]
"""


def changed(old: str, new: str) -> list[str]:
    """The changes from pack text ``old`` to ``new``, as printed."""
    return [str(c) for c in diff_packs([parse_pack(old, "old.yaml")], [parse_pack(new, "new.yaml")])]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(
            ("      calls: [eval]\n", "      calls: [eval, exec]\n"), [], id="call-added-is-not-loosening"
        ),
        pytest.param(
            ("    mode: enforce\n    severity: high\n", "    mode: warn\n    severity: high\n"),
            ["LOOSENS demo/demo.import: mode weakened from enforce to warn"],
            id="mode-weakened",
        ),
        pytest.param(
            ("    mode: enforce\n    severity: high\n", "    mode: audit\n    severity: low\n"),
            [
                "LOOSENS demo/demo.import: mode weakened from enforce to audit",
                "LOOSENS demo/demo.import: severity weakened from high to low",
            ],
            id="mode-and-severity",
        ),
        pytest.param(
            ("mods: [os, socket, pickle]", "mods: [os, socket]"),
            ["LOOSENS demo/demo.import: match.imports no longer has 'pickle'"],
            id="module-removed-from-list",
        ),
        pytest.param(
            ("      imports: [os.path]\n", "      imports: [os.path, socket]\n"),
            ["LOOSENS demo/demo.import: exceptions.imports now allows 'socket'"],
            id="module-allowed",
        ),
        pytest.param(
            ("max_ast_nodes: 4000", "max_ast_nodes: 8000"),
            ["LOOSENS demo/demo.import: match.max_ast_nodes raised from 4000 to 8000"],
            id="cap-raised",
        ),
        pytest.param(
            ("      max_ast_nodes: 4000\n", ""),
            ["LOOSENS demo/demo.import: match.max_ast_nodes removed (was 4000)"],
            id="cap-removed",
        ),
        pytest.param(
            ('      pattern: ["type($A, $B, $C)"]\n', ""),
            ["LOOSENS demo/demo.import: match.structural no longer has 'type($A, $B, $C)'"],
            id="pattern-removed",
        ),
        pytest.param(
            ("      roles: [proposer, solver]\n", "      roles: [proposer]\n"),
            ["LOOSENS demo/demo.import: no longer judges role solver"],
            id="role-dropped",
        ),
        pytest.param(
            (
                "      roles: [proposer, solver]\n",
                "      roles: [proposer, solver]\n      task_types: [induction]\n",
            ),
            ["LOOSENS demo/demo.import: restricted from every task type to ['induction']"],
            id="task-types-narrowed",
        ),
    ],
)
def test_loosening_edits_are_flagged(edit: tuple[str, str], expected: list[str]) -> None:
    """Each loosening edit of a pack yields exactly the expected LOOSENS lines."""
    old, new = edit
    assert old in BASE
    lines = changed(BASE, BASE.replace(old, new))
    assert [line for line in lines if line.startswith("LOOSENS")] == expected


def test_rule_and_pack_removal_and_disabling_loosen() -> None:
    """Removing a rule, disabling a pack by default and removing a pack all loosen."""
    without_eval = BASE[: BASE.index("  - id: demo.eval")]
    assert changed(BASE, without_eval) == ["LOOSENS demo/demo.eval: rule removed"]
    disabled = BASE.replace(
        "description: A pack to diff.\n", "description: A pack to diff.\nenabled_by_default: false\n"
    )
    assert changed(BASE, disabled) == ["LOOSENS demo: pack no longer enabled by default"]
    assert [str(c) for c in diff_packs([parse_pack(BASE, "a.yaml")], [])] == ["LOOSENS demo: pack removed"]


def test_tightening_edits_are_reported_but_do_not_loosen() -> None:
    """Adding a module, lowering a cap and raising a mode are tightening, not loosening."""
    tighter = (
        BASE.replace("mods: [os, socket, pickle]", "mods: [os, socket, pickle, marshal]")
        .replace("max_ast_nodes: 4000", "max_ast_nodes: 2000")
        .replace("      calls: [eval]\n", "      calls: [eval]\n    mode: enforce\n")
    )
    changes = diff_packs([parse_pack(BASE, "a.yaml")], [parse_pack(tighter, "b.yaml")])
    assert not loosening(changes)
    assert {str(c) for c in changes} == {
        "tightens demo/demo.import: match.imports now has 'marshal'",
        "tightens demo/demo.import: match.max_ast_nodes lowered from 4000 to 2000",
    }


def test_identical_shipped_packs_have_no_changes() -> None:
    """The shipped packs diffed against themselves report nothing."""
    packs = load_packs([DEFAULT_PACK_DIR])
    assert diff_packs(packs, packs) == []


def copy_packs(target: Path) -> Path:
    shutil.copytree(DEFAULT_PACK_DIR, target)
    return target


def test_cli_exit_codes_on_real_pack_directories(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """CLI: 0 when nothing loosens, 1 when a shipped pack is loosened, 2 when a side does not load."""
    old = copy_packs(tmp_path / "old")
    new = copy_packs(tmp_path / "new")
    assert main(["policy", "diff", str(old), str(new)]) == 0
    assert "0 changes, 0 loosening" in capsys.readouterr().out
    caps = new / "capabilities.yaml"
    text = caps.read_text(encoding="utf-8")
    assert " pickle," in text
    caps.write_text(text.replace(" pickle,", ""), encoding="utf-8")
    assert main(["policy", "diff", str(old), str(new)]) == 1
    out = capsys.readouterr().out
    assert "LOOSENS capabilities/capability.import: match.imports no longer has 'pickle'" in out
    assert main(["policy", "diff", str(new), str(old)]) == 0  # the reverse only tightens
    (new / "broken.yaml").write_text("schema_version: 1\nkind: watchdog\n", encoding="utf-8")
    assert main(["policy", "diff", str(old), str(new)]) == 2
    assert "does not load" in capsys.readouterr().err
    assert main(["policy", "diff", str(old), str(tmp_path / "missing")]) == 2


def test_cli_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--json`` prints the changes and the loosening count as JSON."""
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(BASE, encoding="utf-8")
    new.write_text(BASE.replace("    mode: enforce\n", "    mode: warn\n"), encoding="utf-8")
    assert main(["policy", "diff", str(old), str(new), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["loosening"] == 1
    assert report["changes"] == [
        {
            "effect": "loosens",
            "pack": "demo",
            "item": "demo.import",
            "message": "mode weakened from enforce to warn",
        }
    ]
