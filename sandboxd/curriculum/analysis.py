"""The curriculum analysed as a whole: features, near-duplicate groups and families of distinct programs.

Identical program texts are analysed once (``Curriculum.index``), and each proposal record maps to its
program. Windows are lists of proposal records; every statistic here weights a program by how often it
was proposed in the window.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import families, minhash
from .drift import Drift, drift
from .features import METRICS, ProgramFeatures, behaviour_signature, featurize
from .items import Record

if TYPE_CHECKING:
    from datasketch import MinHash


@dataclass(frozen=True)
class Curriculum:
    """Distinct programs with their features, MinHash signatures, near-duplicate groups and families."""

    programs: list[str]
    index: dict[str, int]
    features: list[ProgramFeatures]
    hashes: list[MinHash]
    groups: minhash.Groups
    clustering: families.Clustering

    def ids(self, items: Sequence[Record]) -> list[int]:
        """The distinct-program index of each proposal."""
        return [self.index[item.text("program") or ""] for item in items]

    def labels(self, items: Sequence[Record]) -> list[int]:
        """The family of each proposal."""
        return [self.clustering.labels[i] for i in self.ids(items)]

    def metrics(self, items: Sequence[Record]) -> dict[str, list[float]]:
        """Each complexity metric, per proposal whose program parses."""
        feats = [self.features[i] for i in self.ids(items)]
        return {name: [f.metrics()[name] for f in feats if f.parses] for name in METRICS}


def build(items: Sequence[Record]) -> Curriculum:
    """Analyse every distinct program among ``items`` (proposal records)."""
    index: dict[str, int] = {}
    for item in items:
        index.setdefault(item.text("program") or "", len(index))
    programs = list(index)
    feats = [featurize(p) for p in programs]
    hashes = minhash.signatures([f.tokens for f in feats])
    # Programs that behave alike on the probe inputs share a term, which pulls them into one family.
    probed: dict[int, str] = {}
    for item in items:
        signature = item.text("output_signature")
        if signature is not None:
            probed.setdefault(index[item.text("program") or ""], f"sig:{signature}")
    documents = [[*f.documents(), *([probed[i]] if i in probed else [])] for i, f in enumerate(feats)]
    return Curriculum(
        programs,
        index,
        feats,
        hashes,
        minhash.near_duplicates(hashes),
        families.cluster(documents),
    )


def entropy(labels: Sequence[int]) -> float:
    """Shannon entropy of the labels, normalised to [0, 1] by the log of the number of distinct labels."""
    counts = Counter(labels)
    if len(counts) < 2:
        return 0.0
    n = len(labels)
    h = -sum(c / n * math.log(c / n) for c in counts.values())
    return h / math.log(len(counts))


def diversity(curriculum: Curriculum, items: Sequence[Record]) -> dict[str, Any]:
    """How varied a window is: distinct programs, near-duplicate groups, families, output signatures."""
    ids = curriculum.ids(items)
    n = len(ids)
    groups = {curriculum.groups.group[i] for i in ids}
    signatures = {behaviour_signature(item.body) for item in items} - {None}
    labels = [curriculum.clustering.labels[i] for i in ids]
    return {
        "items": n,
        "distinct_programs": len(set(ids)),
        "near_duplicate_groups": len(groups),
        "near_duplicate_rate": 0.0 if n == 0 else 1 - len(groups) / n,
        "families": len(set(labels) - {families.NOISE}),
        "family_entropy": entropy(labels),
        "distinct_output_signatures": len(signatures),
    }


def novelty(curriculum: Curriculum, current: Sequence[Record], reference: Sequence[Record]) -> list[float]:
    """Per current proposal, its novelty against the reference window (``minhash.novelty``)."""
    cur, ref = curriculum.ids(current), sorted(set(curriculum.ids(reference)))
    distinct = sorted(set(cur))
    scores = minhash.novelty([curriculum.hashes[i] for i in distinct], [curriculum.hashes[i] for i in ref])
    by_id = dict(zip(distinct, scores, strict=True))
    return [by_id[i] for i in cur]


def compare(curriculum: Curriculum, baseline: Sequence[Record], current: Sequence[Record]) -> Drift:
    """The drift of ``current`` against ``baseline``."""
    return drift(
        curriculum.labels(baseline),
        curriculum.labels(current),
        curriculum.metrics(baseline),
        curriculum.metrics(current),
    )
