"""Curriculum interpretability: features, near-duplicates, novelty, families and drift, on real programs."""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from curriculum_data import cruxeval_kind, planted_programs, pool
from sklearn.metrics import adjusted_rand_score

from sandboxd.curriculum import drift, families, minhash
from sandboxd.curriculum.features import featurize, output_signature, tokens


@pytest.fixture(scope="module")
def programs() -> list[str]:
    return [p.code for p in pool()]


def test_ast_histogram_and_complexity() -> None:
    """The AST histogram counts node types, and branches raise cyclomatic complexity and Halstead volume."""
    simple = featurize("def f(x):\n    return x\n")
    branchy = featurize(
        "def f(xs):\n    out = []\n    for x in xs:\n        if x % 2 and x > 3:\n            out.append(x * 2 + 1)\n"
        "    return [y for y in out if y]\n"
    )
    assert simple.parses
    assert branchy.parses
    assert simple.node_types["FunctionDef"] == 1
    assert simple.node_types["Return"] == 1
    assert branchy.node_types["For"] == 1
    assert branchy.node_types["ListComp"] == 1
    assert branchy.cyclomatic > simple.cyclomatic >= 1
    assert branchy.halstead_volume > simple.halstead_volume
    assert (simple.sloc, branchy.sloc) == (2, 6)
    assert branchy.node_count == sum(branchy.node_types.values())


def test_tokens_abstract_literals_and_drop_comments() -> None:
    """Numbers and strings become placeholders and comments vanish, so a tweaked constant is the same program."""
    a = tokens("def f(x):  # note\n    return x + 1 + len('ab')\n")
    b = tokens('def f(x):\n    return x + 99 + len("zz")\n')
    assert a == b
    assert "<num>" in a
    assert "<str>" in a
    assert "# note" not in a


@pytest.mark.parametrize(
    "program",
    [
        pytest.param("def f(:\n  pass", id="syntax-error"),
        pytest.param("(" * 5000 + ")" * 5000, id="deep-nesting"),
        pytest.param("x = " + "[" * 300 + "]" * 300, id="nested-lists"),
        pytest.param("\x00\x01 def", id="control-bytes"),
        pytest.param("s = '''unterminated", id="unterminated-string"),
    ],
)
def test_hostile_text_never_raises(program: str) -> None:
    """Text that does not parse still gets lexical features and zero complexity instead of an exception."""
    features = featurize(program)
    assert features.tokens
    if not features.parses:
        assert features.cyclomatic == 0
        assert features.node_types == {}


def test_programs_are_never_executed(tmp_path: Path) -> None:
    """Featurizing a program that would write a file on execution writes nothing: programs are only parsed."""
    target = tmp_path / "pwned"
    program = (
        f"open({str(target)!r}, 'w').write('x')\n"
        f"import os\nos.system('touch {target}')\n"
        f"def f(x):\n    open({str(target)!r}, 'w')\n    return x\n"
    )
    features = featurize(program)
    assert features.parses
    assert features.node_types["Call"] >= 3
    assert not target.exists()


def test_output_signature() -> None:
    """Equal recorded (inputs, outputs) give equal signatures; no outputs give none."""
    assert output_signature(["1"], ["2"]) == output_signature(["1"], ["2"])
    assert output_signature(["1"], ["2"]) != output_signature(["1"], ["3"])
    assert output_signature(["1"], ["2"]) != output_signature(["2"], ["2"])
    assert output_signature(["1"], None) is None
    assert output_signature(["1"], []) is None


def _variant(code: str, rng: random.Random) -> str:
    """A near-duplicate: other constants and one extra statement after the def line."""
    lines = code.split("\n")
    body_indent = lines[1][: len(lines[1]) - len(lines[1].lstrip())] if len(lines) > 1 else "    "
    lines.insert(1, f"{body_indent}_unused = {rng.randint(0, 99)}")
    return re.sub(r"\b\d+\b", lambda m: str(int(m.group(0)) + 1), "\n".join(lines))


def test_minhash_finds_near_duplicates(programs: list[str]) -> None:
    """A program with changed constants and one extra statement is grouped with its original; others are not."""
    rng = random.Random(0)
    originals = [p for p in programs if len(tokens(p)) >= 60][:80]
    variants = [_variant(p, rng) for p in originals]
    hashes = minhash.signatures([tokens(p) for p in [*originals, *variants]])
    groups = minhash.near_duplicates(hashes).group
    n = len(originals)
    found = sum(groups[i] == groups[n + i] for i in range(n))
    assert found >= 0.95 * n, f"only {found} of {n} variants found"
    merged_originals = n - len({groups[i] for i in range(n)})
    assert merged_originals <= 0.05 * n  # distinct real programs stay apart


def test_near_duplicate_rate_of_the_seed_data(programs: list[str]) -> None:
    """Across all distinct AZR and CRUXEval programs only a small share are near-duplicates of another."""
    groups = minhash.near_duplicates(minhash.signatures([tokens(p) for p in programs]))
    assert 0.6 * len(programs) < groups.count() <= len(programs)


def test_novelty_against_a_reference(programs: list[str]) -> None:
    """Programs already in the reference have novelty 0; a new family has novelty 1."""
    reference = minhash.signatures([tokens(p) for p in programs[:300]])
    seen = minhash.novelty(reference[:50], reference)
    new = minhash.novelty(minhash.signatures([tokens(p.code) for p in planted_programs(30)]), reference)
    assert max(seen) == 0.0
    assert min(new) == 1.0
    assert minhash.novelty(reference[:3], []) == [1.0, 1.0, 1.0]


def test_families_separate_string_and_list_programs(programs: list[str]) -> None:
    """CRUXEval string-manipulation and list programs land in different families (purity >= 0.9)."""
    kinds = [cruxeval_kind(p) for p in programs]
    clustering = families.cluster([featurize(p).documents() for p in programs])
    per_family: dict[int, Counter[str]] = defaultdict(Counter)
    for kind, label in zip(kinds, clustering.labels, strict=True):
        if kind is not None and label != families.NOISE:
            per_family[label][kind] += 1
    clustered = sum(sum(c.values()) for c in per_family.values())
    majority = sum(max(c.values()) for c in per_family.values())
    assert clustered >= 60
    assert majority / clustered >= 0.9
    majorities = Counter(c.most_common(1)[0][0] for c in per_family.values())
    assert majorities["string"] >= 3
    assert majorities["list"] >= 2
    for family in clustering.families.values():  # every family is named by its features and exemplars
        assert family.exemplars
        assert family.name
        assert family.id == families.NOISE or family.top_features


def test_families_are_stable_under_resampling(programs: list[str]) -> None:
    """Clustering 90% of the programs again puts the programs clustered both times in the same groups."""
    documents = [featurize(p).documents() for p in programs]
    full = families.cluster(documents).labels
    keep = sorted(random.Random(1).sample(range(len(programs)), int(0.9 * len(programs))))
    again = families.cluster([documents[i] for i in keep]).labels
    pairs = [(full[i], b) for i, b in zip(keep, again, strict=True) if full[i] != -1 and b != -1]
    assert len(pairs) >= 200
    assert adjusted_rand_score([a for a, _ in pairs], [b for _, b in pairs]) >= 0.85
    assert families.cluster(documents).labels == full  # deterministic


def test_families_of_tiny_inputs() -> None:
    """Too few programs to cluster: everything is the noise family, without an error."""
    assert families.cluster([]).labels == []
    result = families.cluster([["def", "f"], ["def", "g"], ["x"]])
    assert result.labels == [families.NOISE] * 3


def test_js_distance_bounds() -> None:
    """The Jensen-Shannon distance is 0 for equal shares and 1 for disjoint ones."""
    assert drift.js_distance([5, 5], [1, 1]) == 0.0
    assert drift.js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert 0 < drift.js_distance([3, 1], [1, 3]) < 1


def test_drift_needs_data() -> None:
    """With too few items in a window the score is 0 and the reason says so."""
    result = drift.drift([0] * 5, [1] * 5, {"sloc": [1.0] * 5}, {"sloc": [9.0] * 5})
    assert result.score == 0.0
    assert not result.flagged
    assert "too few" in result.reason


def test_drift_components() -> None:
    """Disjoint families and shifted complexity give a high score; identical windows give 0."""
    rng = random.Random(0)
    same = [rng.randrange(5) for _ in range(400)]
    base_metric = {"sloc": [float(rng.randrange(3, 9)) for _ in range(400)]}
    assert drift.drift(same, list(same), base_metric, dict(base_metric)).score == 0.0
    moved = drift.drift(same, [9] * 400, base_metric, {"sloc": [v + 10 for v in base_metric["sloc"]]})
    assert moved.flagged
    assert moved.family_component > 0.8
    assert moved.complexity_component > 0.5
    assert moved.metrics["sloc"].statistic == pytest.approx(1.0)
