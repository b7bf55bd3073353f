"""Helpers for authors of watchdog plugins, re-exported by :mod:`sandboxd.testing`.

```python
from sandboxd.testing import load_plugin, plugin_pack, run_check

def test_my_check_fires() -> None:
    check = load_plugin("my-check")                  # through the entry point, as the daemon loads it
    [finding] = run_check(check, "def f(x):\\n    return 1  # TODO")
    assert finding.rule_id == "my-check.todo"

def test_my_check_vetoes_through_a_pack() -> None:
    decision = check_source("x = 1  # TODO", [plugin_pack("my-check")], role="solver")
    assert decision.decision == "veto"
```
"""

from __future__ import annotations

from .criteria import Pack, PluginBinding
from .decision import Finding
from .outcome import Outcome
from .packs import parse_pack
from .plugins import CheckContext, WatchdogCheck, load_check, plugin_findings
from .rules import Mode, PluginUse, Role


def load_plugin(name: str) -> WatchdogCheck:
    """The check installed under ``name`` in the ``sandboxd.watchdog`` entry-point group (or PluginError)."""
    return load_check(name)


def run_check(
    check: WatchdogCheck,
    source: str = "",
    *,
    role: Role = "solver",
    task_type: str | None = None,
    outcome: Outcome | None = None,
    mode: Mode = "enforce",
) -> list[Finding]:
    """Run ``check`` the way a pack runs it: its phase decides whether it sees an outcome (default: an
    ``ok`` run), a raising check yields a ``plugin.error`` finding, findings get ``mode`` and pack ``test``."""
    if not isinstance(check, WatchdogCheck):
        raise TypeError(f"{check!r} is not a check (needs name, phase and check(context))")
    if check.phase == "post" and outcome is None:
        outcome = Outcome(status="ok", exit_code=0)
    context = CheckContext(source, role, task_type, outcome if check.phase == "post" else None)
    binding = PluginBinding(PluginUse(name=check.name, mode=mode), check)
    return plugin_findings([binding], "test", check.phase, context)


def plugin_pack(name: str, mode: Mode = "enforce") -> Pack:
    """A one-plugin pack, loaded through the real loader (so an unknown name fails as it would in a policy)."""
    text = (
        "schema_version: 1\nkind: watchdog\nname: plugin-test\n"
        f"description: enables the {name} plugin for a test\n"
        f"plugins:\n  - name: {name}\n    mode: {mode}\n"
    )
    return parse_pack(text, f"<plugin_pack {name}>")
