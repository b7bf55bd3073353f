"""``policy diff``: what changed between two sets of packs, and which changes **loosen** the watchdog.

Pure: packs in, :class:`Change` list out. Rules are compared after their lists and macros are resolved, so
removing a module from a shared list shows up on every rule that used the list. A change loosens when the
watchdog would let through something it stopped before, or would say less about it:

* a pack removed or no longer enabled by default; a rule or plugin removed; a rule's phase changed;
* a mode weakened (enforce → warn → audit) or a severity lowered;
* a role or task type no longer judged (a rule restricted from "every task type" to some);
* a name, regex, pattern or status removed from ``match``; a cap raised or removed;
* a name added to ``exceptions`` (including ``unless_calls``).

The opposite changes tighten; everything else (descriptions, tags, inline tests) is not reported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

from .criteria import CompiledRule, Criteria, Exemptions, Names, Pack, PluginBinding, Structural
from .rules import AppliesTo

Effect = Literal["loosens", "tightens"]
_MODE_RANK = {"audit": 0, "warn": 1, "enforce": 2}
_SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}


@dataclass(frozen=True)
class Change:
    effect: Effect
    pack: str
    item: str  # rule id, ``plugin:<name>``, or "" for the pack itself
    message: str

    def __str__(self) -> str:
        where = f"{self.pack}/{self.item}" if self.item else self.pack
        label = "LOOSENS" if self.effect == "loosens" else "tightens"
        return f"{label} {where}: {self.message}"


def loosening(changes: Sequence[Change]) -> list[Change]:
    return [c for c in changes if c.effect == "loosens"]


def diff_packs(old: Sequence[Pack], new: Sequence[Pack]) -> list[Change]:
    """Every loosening and tightening change from ``old`` to ``new`` (packs matched by name)."""
    before, after = {p.name: p for p in old}, {p.name: p for p in new}
    out: list[Change] = []
    for name in sorted(before.keys() | after.keys()):
        if name not in after:
            out.append(Change("loosens", name, "", "pack removed"))
        elif name not in before:
            if after[name].enabled_by_default:
                out.append(Change("tightens", name, "", "pack added (enabled by default)"))
        else:
            out.extend(_pack(before[name], after[name]))
    return out


def _pack(old: Pack, new: Pack) -> Iterator[Change]:
    if old.enabled_by_default != new.enabled_by_default:
        effect: Effect = "loosens" if old.enabled_by_default else "tightens"
        state = "enabled" if new.enabled_by_default else "no longer enabled"
        yield Change(effect, new.name, "", f"pack {state} by default")
    rules_old = {r.rule.id: r for r in old.rules}
    rules_new = {r.rule.id: r for r in new.rules}
    for rule_id in sorted(rules_old.keys() | rules_new.keys()):
        if rule_id not in rules_new:
            yield Change("loosens", new.name, rule_id, "rule removed")
        elif rule_id not in rules_old:
            yield Change("tightens", new.name, rule_id, f"rule added ({rules_new[rule_id].rule.mode})")
        else:
            yield from (
                Change(effect, new.name, rule_id, message)
                for effect, message in _rule(rules_old[rule_id], rules_new[rule_id])
            )
    yield from _plugins(new.name, old.plugins, new.plugins)


def _rule(old: CompiledRule, new: CompiledRule) -> Iterator[tuple[Effect, str]]:
    a, b = old.rule, new.rule
    if a.phase != b.phase:
        yield "loosens", f"phase changed from {a.phase} to {b.phase} (it no longer checks what it did)"
    yield from _ranked("mode", a.mode, b.mode, _MODE_RANK)
    yield from _ranked("severity", a.severity, b.severity, _SEVERITY_RANK)
    yield from _scope(a.applies_to, b.applies_to)
    yield from _criteria(old.criteria, new.criteria)
    yield from _exemptions(old.exemptions, new.exemptions)


def _ranked(label: str, old: str, new: str, rank: dict[str, int]) -> Iterator[tuple[Effect, str]]:
    if rank[new] < rank[old]:
        yield "loosens", f"{label} weakened from {old} to {new}"
    elif rank[new] > rank[old]:
        yield "tightens", f"{label} raised from {old} to {new}"


def _scope(old: AppliesTo, new: AppliesTo) -> Iterator[tuple[Effect, str]]:
    for role in sorted(set(old.roles) - set(new.roles)):
        yield "loosens", f"no longer judges role {role}"
    for role in sorted(set(new.roles) - set(old.roles)):
        yield "tightens", f"now judges role {role}"
    was, now = set(old.task_types), set(new.task_types)
    if was == now:
        return
    if not was:
        yield "loosens", f"restricted from every task type to {sorted(now)}"
    elif not now:
        yield "tightens", "now judges every task type"
    else:
        for kind in sorted(was - now):
            yield "loosens", f"no longer judges task type {kind}"
        for kind in sorted(now - was):
            yield "tightens", f"now judges task type {kind}"


def _criteria(old: Criteria, new: Criteria) -> Iterator[tuple[Effect, str]]:
    for spec in fields(Criteria):
        a, b = getattr(old, spec.name), getattr(new, spec.name)
        label = spec.name
        if spec.name.startswith("max_"):
            yield from _cap(label, a, b)
            continue
        removed, added = _entries(a) - _entries(b), _entries(b) - _entries(a)
        for entry in sorted(removed):
            yield "loosens", f"match.{label} no longer has {entry}"
        for entry in sorted(added):
            yield "tightens", f"match.{label} now has {entry}"


def _exemptions(old: Exemptions, new: Exemptions) -> Iterator[tuple[Effect, str]]:
    for spec in fields(Exemptions):
        a, b = _entries(getattr(old, spec.name)), _entries(getattr(new, spec.name))
        for entry in sorted(b - a):
            yield "loosens", f"exceptions.{spec.name} now allows {entry}"
        for entry in sorted(a - b):
            yield "tightens", f"exceptions.{spec.name} no longer allows {entry}"


def _cap(label: str, old: float | None, new: float | None) -> Iterator[tuple[Effect, str]]:
    if old == new:
        return
    if new is None:
        yield "loosens", f"match.{label} removed (was {old})"
    elif old is None:
        yield "tightens", f"match.{label} added ({new})"
    elif new > old:
        yield "loosens", f"match.{label} raised from {old} to {new}"
    else:
        yield "tightens", f"match.{label} lowered from {old} to {new}"


def _entries(value: Any) -> set[str]:
    """The comparable entries of a criteria field, as quoted strings."""
    if isinstance(value, Names):
        return {repr(p) for p in value.source}
    if isinstance(value, frozenset):
        return {repr(v) for v in value}
    out: set[str] = set()
    for item in value:
        if isinstance(item, re.Pattern):
            out.add(repr(item.pattern))
        elif isinstance(item, Structural):
            rule = item.config["rule"]
            unless = rule.get("not", {}).get("inside", {}).get("any", [])
            suffix = f" unless inside {json.dumps([u['pattern'] for u in unless])}" if unless else ""
            out.add(f"{item.pattern!r}{suffix}")
    return out


def _plugins(pack: str, old: Sequence[PluginBinding], new: Sequence[PluginBinding]) -> Iterator[Change]:
    before = {b.use.name: b.use for b in old}
    after = {b.use.name: b.use for b in new}
    for name in sorted(before.keys() | after.keys()):
        item = f"plugin:{name}"
        if name not in after:
            yield Change("loosens", pack, item, "plugin removed")
        elif name not in before:
            yield Change("tightens", pack, item, f"plugin added ({after[name].mode})")
        else:
            a, b = before[name], after[name]
            for effect, message in [
                *_ranked("mode", a.mode, b.mode, _MODE_RANK),
                *_scope(a.applies_to, b.applies_to),
            ]:
                yield Change(effect, pack, item, message)
