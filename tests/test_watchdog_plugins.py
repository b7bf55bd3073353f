"""Watchdog plugins: a real package pip-installed and loaded through the ``sandboxd.watchdog`` entry points."""

from __future__ import annotations

import asyncio
import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandboxd.api.app import create_app
from sandboxd.settings import BUILTIN_POLICIES, Settings
from sandboxd.testing import FakeBackend, load_plugin, plugin_pack, run_check
from sandboxd.watchdog.checker import check_source
from sandboxd.watchdog.decision import DecisionKind, Finding
from sandboxd.watchdog.outcome import Outcome
from sandboxd.watchdog.packs import PackError, parse_pack
from sandboxd.watchdog.plugins import CheckContext, PluginError, installed
from sandboxd.watchdog.postexec import check_outcome

EXAMPLE = Path(__file__).parent / "plugins" / "example"


@pytest.fixture(scope="module", autouse=True)
def example_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """tests/plugins/example, pip-installed into a temporary directory that is put on sys.path."""
    root = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(EXAMPLE, root / "src")  # the build leaves build/ and *.egg-info behind
    site = root / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
        timeout=300,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(site))
        importlib.invalidate_caches()
        yield site
    sys.modules.pop("sandboxd_example_plugin", None)


def test_example_plugin_is_installed_with_entry_points(example_plugin: Path) -> None:
    """The example package is installed (a real dist-info) and registers its checks in the group."""
    assert list(example_plugin.glob("sandboxd_example_plugin-*.dist-info/entry_points.txt"))
    assert {"example-todo", "example-loud-output"} <= set(installed())


def test_plugin_loads_from_its_entry_point_and_fires() -> None:
    """load_plugin goes through the entry point; run_check runs the check as a pack would."""
    check = load_plugin("example-todo")
    assert (check.name, check.phase) == ("example-todo", "static")
    assert type(check).__module__ == "sandboxd_example_plugin"
    [finding] = run_check(check, "def f(x):\n    return x  # TODO: generalise")
    assert (finding.rule_id, finding.line, finding.mode, finding.pack) == (
        "example.todo",
        2,
        "enforce",
        "test",
    )
    assert run_check(check, "def f(x):\n    return x") == []


def test_enabled_plugin_vetoes_through_the_static_check() -> None:
    """A pack that enables the plugin by name vetoes with its findings; warn mode only warns."""
    code = "def f(x):\n    return 1  # FIXME"
    assert check_source(code, [plugin_pack("example-todo")], "solver").decision == DecisionKind.VETO
    assert check_source(code, [plugin_pack("example-todo", "warn")], "solver").decision == DecisionKind.WARN
    assert check_source("def f(x):\n    return 1", [plugin_pack("example-todo")], "solver").findings == ()


def test_plugin_scope_follows_the_pack() -> None:
    """``applies_to`` in the pack's plugin entry limits the roles the plugin judges."""
    scoped = parse_pack(
        "schema_version: 1\nkind: watchdog\nname: p\ndescription: d\n"
        "plugins:\n  - name: example-todo\n    applies_to:\n      roles: [solver]\n",
        "p.yaml",
    )
    assert check_source("x = 1  # TODO", [scoped], "solver").decision == DecisionKind.VETO
    assert check_source("x = 1  # TODO", [scoped], "proposer").decision == DecisionKind.ALLOW


def test_post_phase_plugin_sees_the_outcome() -> None:
    """A post plugin runs after execution only, on the outcome."""
    pack = plugin_pack("example-loud-output")
    assert check_source("print('x' * 5000)", [pack], "proposer").findings == ()
    loud = check_outcome(Outcome("ok", stdout="x" * 5000), [pack], "proposer")
    assert loud.decision == DecisionKind.VETO
    assert loud.findings[0].evidence == "5000 chars"
    assert check_outcome(Outcome("ok", stdout="x"), [pack], "proposer").findings == ()


def test_unknown_or_broken_plugins_fail_loading_with_file_line_and_field() -> None:
    """An unknown name, or an entry point that is not a check, is a pack error at plugins[i].name."""
    text = "schema_version: 1\nkind: watchdog\nname: p\ndescription: d\nplugins:\n  - name: {}\n"
    with pytest.raises(PackError) as raised:
        parse_pack(text.format("nope"), "p.yaml")
    [problem] = raised.value.problems
    assert (problem.line, problem.field) == (6, "plugins[0].name")
    assert "no plugin 'nope' in entry-point group sandboxd.watchdog" in problem.message
    with pytest.raises(PackError, match="is not a check"):
        parse_pack(text.format("example-not-a-check"), "p.yaml")
    with pytest.raises(PluginError, match="is not a check"):
        load_plugin("example-not-a-check")


class Exploding:
    """A check that raises: its findings become plugin.error (fail closed)."""

    name = "exploding"
    phase = "static"

    def check(self, context: CheckContext) -> list[Finding]:
        raise RuntimeError(f"boom on {len(context.source)} chars")


def test_a_raising_plugin_fails_closed() -> None:
    """A plugin that raises yields a plugin.error finding in the pack's mode instead of crashing."""
    [finding] = run_check(Exploding(), "x = 1")
    assert (finding.rule_id, finding.mode) == ("plugin.error", "enforce")
    assert "RuntimeError: boom on 5 chars" in finding.evidence


def test_plugin_enabled_in_a_policy_vetoes_a_run_before_any_sandbox(tmp_path: Path) -> None:
    """A sandbox policy whose packs enable the plugin vetoes over HTTP without touching a sandbox."""
    packs = tmp_path / "packs"
    packs.mkdir()
    (packs / "plugins.yaml").write_text(
        "schema_version: 1\nkind: watchdog\nname: plugins\ndescription: the example plugin\n"
        "plugins:\n  - name: example-todo\n",
        encoding="utf-8",
    )
    policies = tmp_path / "policies"
    policies.mkdir()
    for source in BUILTIN_POLICIES.glob("*.yaml"):
        shutil.copy(source, policies / source.name)
    (policies / "plugged.yaml").write_text(
        "schema_version: 1\nkind: sandbox\nname: plugged\nextends: default\ndescription: plugin test\n"
        f"watchdog:\n  enabled: true\n  packs_dir: {packs}\n",
        encoding="utf-8",
    )
    app = create_app(
        Settings(instance="wd-plugin", policies_dir=policies, warm_pools=False), backend=FakeBackend()
    )

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            return await http.post("/v1/runs", json={"policy": "plugged", "code": "print(1)  # TODO"})

    response = asyncio.run(send())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "vetoed"
    assert body["watchdog"]["findings"][0]["rule_id"] == "example.todo"
