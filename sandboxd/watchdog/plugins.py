"""Plugin checks: third-party code registered in the entry-point group ``sandboxd.watchdog``.

A plugin is an object (or a class with a no-argument constructor) with a ``name``, a ``phase`` (``static``:
before execution, it sees the source; ``post``: after execution, it also sees the outcome) and
``check(context) -> list[Finding]``. A pack enables it by its entry-point name::

    plugins:
      - name: todo-marker        # [project.entry-points."sandboxd.watchdog"] todo-marker = "pkg:TodoCheck"
        mode: warn               # the pack decides the mode of the plugin's findings (default enforce)
        applies_to: {roles: [solver]}

Plugins run on the trusted side, in the daemon's process, and are trusted code like sandboxd itself: they
must never run or import the program they judge. A plugin that raises yields a ``plugin.error`` finding in
the pack's mode (fail closed). An unknown name fails loading with file, line and field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from importlib.metadata import EntryPoint, entry_points
from typing import Protocol, runtime_checkable

from .criteria import PluginBinding
from .decision import Finding
from .outcome import Outcome
from .rules import Phase, PluginUse, Role, Severity

GROUP = "sandboxd.watchdog"
MAX_FINDINGS_PER_PLUGIN = 20

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class CheckContext:
    """What a plugin check sees. ``outcome`` is set in the ``post`` phase only."""

    source: str
    role: Role
    task_type: str | None = None
    outcome: Outcome | None = None


@runtime_checkable
class WatchdogCheck(Protocol):
    """A plugin check. ``check`` must be pure and quick (it runs on every screened program), must not
    execute the program, and returns the findings it has (an empty list when nothing is wrong). The
    ``mode`` and ``pack`` of the returned findings are replaced by the pack that enables the plugin."""

    name: str
    phase: Phase

    def check(self, context: CheckContext) -> list[Finding]: ...


def finding(
    rule_id: str,
    message: str,
    *,
    severity: Severity = "high",
    line: int = 0,
    col: int = 0,
    evidence: str = "",
) -> Finding:
    """A finding for a plugin to return; the enabling pack fills in ``pack`` and ``mode``."""
    return Finding(rule_id, "", "enforce", severity, message, line, col, evidence)


class PluginError(Exception):
    """A plugin name is not installed, or its entry point does not load into a valid check."""


def installed() -> dict[str, EntryPoint]:
    """The entry points of the group, by name."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def load_check(name: str) -> WatchdogCheck:
    """Load the check registered as ``name``; raise :class:`PluginError` saying why it cannot be used."""
    found = installed()
    if name not in found:
        raise PluginError(f"no plugin {name!r} in entry-point group {GROUP}; installed: {sorted(found)}")
    try:
        loaded = found[name].load()
        check = loaded() if isinstance(loaded, type) else loaded
    except Exception as exc:  # any failure of third-party import code is reported as a problem
        raise PluginError(f"plugin {name!r} does not load: {type(exc).__name__}: {exc}") from None
    if not isinstance(check, WatchdogCheck):
        raise PluginError(f"plugin {name!r} is not a check (needs name, phase and check(context))")
    if check.phase not in ("static", "post"):
        raise PluginError(f"plugin {name!r} has phase {check.phase!r}; expected 'static' or 'post'")
    return check


def bind_plugins(uses: Sequence[PluginUse], problem: Callable[[Loc, str], None]) -> tuple[PluginBinding, ...]:
    """Load every plugin a pack enables; report each failure through ``problem`` at its location."""
    bound: list[PluginBinding] = []
    for index, use in enumerate(uses):
        try:
            bound.append(PluginBinding(use, load_check(use.name)))
        except PluginError as exc:
            problem(("plugins", index, "name"), str(exc))
    return tuple(bound)


def plugin_findings(
    bindings: Iterable[PluginBinding], pack: str, phase: Phase, context: CheckContext
) -> list[Finding]:
    """Run the pack's plugins of ``phase`` that apply to the context; their findings carry the pack's mode."""
    out: list[Finding] = []
    for binding in bindings:
        use, check = binding.use, binding.check
        if check.phase != phase or context.role not in use.applies_to.roles:
            continue
        types = use.applies_to.task_types
        if context.task_type is not None and types and context.task_type not in types:
            continue
        try:
            found = list(check.check(context))[:MAX_FINDINGS_PER_PLUGIN]
            if not all(isinstance(f, Finding) for f in found):
                raise TypeError("check() must return a list of Finding")
        except Exception as exc:  # a failing plugin must not crash the request: fail closed
            found = [
                finding("plugin.error", f"plugin {use.name} failed", evidence=f"{type(exc).__name__}: {exc}")
            ]
        out.extend(replace(f, pack=pack, mode=use.mode) for f in found)
    return out
