"""``sandboxd policy validate|test|explain|diff``: check watchdog packs, see which rules fire on a program,
and flag the changes between two versions of the packs that loosen the watchdog."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandboxd.cli import Subparsers

# The pack modules import pydantic and yaml; handlers import them lazily (hence the PLC0415 markers).
DEFAULT_PACK_DIR = Path(__file__).resolve().parents[2] / "policies" / "watchdog"


def _validate(args: argparse.Namespace) -> int:
    from .packs import PackError, load_packs  # noqa: PLC0415 - imported lazily, see the module docstring

    try:
        packs = load_packs(args.files)
    except PackError as exc:
        print(exc, file=sys.stderr)
        return 1
    for pack in packs:
        print(f"ok {pack.path}: {pack.name} ({len(pack.rules)} rules)")
    return 0


def _test(args: argparse.Namespace) -> int:
    from .packs import PackError, load_packs  # noqa: PLC0415 - imported lazily, see the module docstring
    from .selftest import run_inline_tests  # noqa: PLC0415 - imported lazily, see the module docstring

    try:
        packs = load_packs(args.files or [DEFAULT_PACK_DIR])
    except PackError as exc:
        print(exc, file=sys.stderr)
        return 1
    results = list(run_inline_tests(packs))
    failed = [r for r in results if not r.passed]
    for r in failed:
        want = "fire" if r.expected == "invalid" else "not fire"
        print(f"FAIL {r.pack}/{r.rule_id}: should {want} on {r.code[:120]!r}", file=sys.stderr)
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed ({len(packs)} packs)")
    return 1 if failed else 0


def _explain(args: argparse.Namespace) -> int:
    from .checker import check_source  # noqa: PLC0415 - imported lazily, see the module docstring
    from .packs import PackError, load_packs  # noqa: PLC0415 - imported lazily, see the module docstring

    try:
        packs = load_packs(args.packs or [DEFAULT_PACK_DIR])
    except PackError as exc:
        print(exc, file=sys.stderr)
        return 1
    if not args.all_packs and not args.packs:
        packs = [p for p in packs if p.enabled_by_default]
    source = args.file.read_text(encoding="utf-8")
    decision = check_source(source, packs, args.role, args.task_type)
    print(f"decision: {decision.decision.value}")
    for f in decision.findings:
        print(f"{args.file}:{f.line}:{f.col}: {f.mode} {f.severity} {f.rule_id}: {f.message} [{f.evidence}]")
    return 0


# ``policy diff`` exit codes (docs/watchdog.md, "policy diff")
DIFF_SAME_OR_TIGHTER = 0  # nothing loosens (there may be tightening changes)
DIFF_LOOSENS = 1  # at least one change loosens the watchdog
DIFF_UNREADABLE = 2  # a side does not load (invalid pack, missing path); argparse also uses 2 for usage


def _diff(args: argparse.Namespace) -> int:
    from .diff import diff_packs, loosening  # noqa: PLC0415 - imported lazily, see the module docstring
    from .packs import PackError, load_packs  # noqa: PLC0415 - imported lazily, see the module docstring

    sides = []
    for label, path in (("OLD", args.old), ("NEW", args.new)):
        if not path.exists():
            print(f"{label} {path}: no such file or directory", file=sys.stderr)
            return DIFF_UNREADABLE
        try:
            sides.append(load_packs([path]))
        except (PackError, OSError) as exc:
            print(f"{label} {path} does not load:\n{exc}", file=sys.stderr)
            return DIFF_UNREADABLE
    changes = diff_packs(sides[0], sides[1])
    loose = loosening(changes)
    if args.json:
        rows = [{"effect": c.effect, "pack": c.pack, "item": c.item, "message": c.message} for c in changes]
        print(json.dumps({"loosening": len(loose), "changes": rows}, indent=2))
    else:
        for change in changes:
            print(change)
        print(f"{len(changes)} changes, {len(loose)} loosening")
    return DIFF_LOOSENS if loose else DIFF_SAME_OR_TIGHTER


def register_policy(subparsers: Subparsers) -> None:
    """``sandboxd policy validate|test|explain|diff``: watchdog rule packs."""
    parser = subparsers.add_parser("policy", help="validate, test and explain watchdog rule packs")
    commands = parser.add_subparsers(dest="policy_command", required=True, metavar="COMMAND")
    validate = commands.add_parser("validate", help="check pack files; exit 1 with file:line: field errors")
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE")
    validate.set_defaults(handler=_validate)
    test = commands.add_parser("test", help=f"run every inline rule test (default: {DEFAULT_PACK_DIR.name}/)")
    test.add_argument("files", nargs="*", type=Path, metavar="FILE")
    test.set_defaults(handler=_test)
    explain = commands.add_parser("explain", help="show which rules fire on a program, and why")
    explain.add_argument("file", type=Path, metavar="FILE.py")
    explain.add_argument(
        "--role", choices=("proposer", "solver"), default="proposer", help="default: %(default)s"
    )
    explain.add_argument("--task-type", help="task type (default: every rule, whatever its task types)")
    explain.add_argument("--packs", nargs="+", type=Path, metavar="PACK", help="pack files or directories")
    explain.add_argument(
        "--all-packs", action="store_true", help="include optional profiles such as azr-compat"
    )
    explain.set_defaults(handler=_explain)
    diff = commands.add_parser(
        "diff",
        help="list the changes between two sets of packs; exit 1 if any loosens the watchdog",
        description="Exit codes: 0 nothing loosens, 1 a change loosens, 2 a side does not load.",
    )
    diff.add_argument("old", type=Path, metavar="OLD", help="pack file or directory")
    diff.add_argument("new", type=Path, metavar="NEW", help="pack file or directory")
    diff.add_argument("--json", action="store_true", help="print the changes as JSON")
    diff.set_defaults(handler=_diff)
