"""The static check: pure functions from (source, packs, role, task type) to a :class:`Decision`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .criteria import CompiledRule, Names, Pack
from .decision import Decision, Finding, decide
from .facts import Fact, Facts, extract
from .patterns import Tree
from .plugins import CheckContext, plugin_findings
from .rules import Role

MAX_FINDINGS_PER_RULE = 20  # bounded evidence: a program with 10k os calls yields 20 findings


def check_source(source: str, packs: Iterable[Pack], role: Role, task_type: str | None = None) -> Decision:
    """Run every rule of ``packs`` that applies to ``role`` and ``task_type`` (``None``: all task types)."""
    facts = extract(source)
    tree = Tree(source)
    findings: list[Finding] = []
    for pack in packs:
        for rule in pack.rules:
            if rule.rule.phase == "static" and applies(rule, role, task_type):
                findings.extend(rule_findings(rule, facts, source, tree))
        if pack.plugins:
            context = CheckContext(source, role, task_type)
            findings.extend(plugin_findings(pack.plugins, pack.name, "static", context))
    return decide(findings)


def applies(rule: CompiledRule, role: Role, task_type: str | None) -> bool:
    """Does ``rule`` judge this role and task type? An unknown task type gets every rule (fail closed)."""
    scope = rule.rule.applies_to
    if role not in scope.roles:
        return False
    return task_type is None or not scope.task_types or task_type in scope.task_types


def rule_findings(rule: CompiledRule, facts: Facts, source: str, tree: Tree | None = None) -> list[Finding]:
    """The findings of one rule on one program, at most :data:`MAX_FINDINGS_PER_RULE`."""
    skip = rule.exemptions.unless_calls
    if skip and any(skip.matches(f.name) for f in facts.calls):
        return []
    return bounded(rule, _evidence(rule, facts, source, tree or Tree(source)))


def bounded(rule: CompiledRule, evidence: Iterable[tuple[int, int, str]]) -> list[Finding]:
    """One finding per piece of evidence, at most :data:`MAX_FINDINGS_PER_RULE`."""
    found: list[Finding] = []
    for line, col, evidence_text in evidence:
        found.append(
            Finding(
                rule_id=rule.rule.id,
                pack=rule.pack,
                mode=rule.rule.mode,
                severity=rule.rule.severity,
                message=rule.rule.description,
                line=line,
                col=col,
                evidence=evidence_text,
            )
        )
        if len(found) >= MAX_FINDINGS_PER_RULE:
            break
    return found


def _evidence(rule: CompiledRule, facts: Facts, source: str, tree: Tree) -> Iterator[tuple[int, int, str]]:
    c, x = rule.criteria, rule.exemptions
    yield from _facts("import", facts.imports, c.imports, x.imports)
    yield from _facts("call", facts.calls, c.calls, x.calls)
    yield from _facts("attribute", facts.attributes, c.attributes, x.attributes)
    yield from _facts("name", facts.names, c.names, x.names)
    yield from _facts("method", facts.methods, c.methods, Names())
    for pattern in c.regex:
        for hit in pattern.finditer(source):
            line = source.count("\n", 0, hit.start()) + 1
            col = hit.start() - (source.rfind("\n", 0, hit.start()) + 1)
            yield line, col, f"regex {pattern.pattern!r} matched {hit.group(0)[:80]!r}"
    if facts.parsed:  # like the AST facts, patterns judge only sources that parse
        for structural in c.structural:
            yield from tree.hits(structural)
    caps = (
        ("source_bytes", facts.source_bytes, c.max_source_bytes, True),
        ("ast_nodes", facts.ast_nodes, c.max_ast_nodes, facts.parsed),
        ("depth", facts.depth, c.max_depth, facts.parsed),
    )
    for label, value, cap, known in caps:
        if known and cap is not None and value > cap:
            yield 0, 0, f"{label}={value} > {cap}"


def _facts(
    kind: str, facts: tuple[Fact, ...], wanted: Names, allowed: Names
) -> Iterator[tuple[int, int, str]]:
    if not wanted:
        return
    judged: dict[str, bool] = {}  # a program repeats its names: match each distinct one once
    for fact in facts:
        hit = judged.get(fact.name)
        if hit is None:
            hit = judged[fact.name] = wanted.matches(fact.name) and not (
                allowed and allowed.matches(fact.name)
            )
        if hit:
            yield fact.line, fact.col, f"{kind} {fact.name}"
