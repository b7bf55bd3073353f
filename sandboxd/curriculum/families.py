"""Task families: clusters of programs, each named by its exemplars and most distinctive features.

Each program is a bag of terms (tokens plus AST node types, ``ProgramFeatures.documents``), weighted by
sublinear TF-IDF, reduced to ``COMPONENTS`` dimensions with truncated SVD (latent semantic analysis) and
L2-normalised, so Euclidean distance ranks like cosine distance. HDBSCAN then finds dense groups without
being told how many there are, and leaves programs that belong to no dense group as noise (family -1).
With more than ``FIT_CAP`` distinct programs, HDBSCAN is fitted on a deterministic sample and the rest are
assigned to the nearest family centroid when they are as close to it as its own members are.
Every step is deterministic (fixed seeds, sorted input), so the same ledger gives the same families.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

COMPONENTS = 32
FIT_CAP = 4000
SEED = 0
NOISE = -1
TOP_FEATURES = 6
EXEMPLARS = 3


@dataclass(frozen=True)
class Family:
    """A cluster of programs. ``id`` -1 is the noise bucket (programs in no dense group)."""

    id: int
    name: str  # a short label made of the top features
    top_features: tuple[str, ...]  # the terms most over-represented in the family, best first
    exemplars: tuple[int, ...]  # program indices closest to the family centroid, best first
    size: int  # number of distinct programs in it


@dataclass(frozen=True)
class Clustering:
    """The family of each distinct program (``labels[i]``), and the families by id (largest first)."""

    labels: list[int]
    families: dict[int, Family]


def min_cluster_size(n: int) -> int:
    """The smallest family worth naming: 1% of the programs, at least 5."""
    return max(5, round(0.01 * n))


def _sample(n: int, cap: int) -> list[int]:
    """A deterministic subset of ``range(n)`` of size ``min(n, cap)``."""
    if n <= cap:
        return list(range(n))
    ranked = sorted(range(n), key=lambda i: hashlib.sha256(i.to_bytes(8, "big")).digest())
    return sorted(ranked[:cap])


def _embed(documents: Sequence[Sequence[str]]) -> tuple[Any, npt.NDArray[np.float64], list[str]]:
    from sklearn.decomposition import TruncatedSVD  # noqa: PLC0415 - heavy, imported only when clustering
    from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: PLC0415 - as above
    from sklearn.preprocessing import normalize  # noqa: PLC0415 - as above

    vectorizer = TfidfVectorizer(analyzer=lambda doc: doc, sublinear_tf=True, min_df=2)
    try:
        tfidf = vectorizer.fit_transform(documents)
    except ValueError:  # every term occurs in one document only
        vectorizer = TfidfVectorizer(analyzer=lambda doc: doc, sublinear_tf=True)
        tfidf = vectorizer.fit_transform(documents)
    components = min(COMPONENTS, tfidf.shape[1] - 1, tfidf.shape[0] - 1)
    if components < 2:
        dense = tfidf.toarray()
    else:
        dense = TruncatedSVD(n_components=components, random_state=SEED).fit_transform(tfidf)
    return tfidf, normalize(dense), list(vectorizer.get_feature_names_out())


def cluster(documents: Sequence[Sequence[str]], *, min_size: int | None = None) -> Clustering:
    """Group distinct programs (their ``documents()``) into families."""
    import numpy as np  # noqa: PLC0415 - heavy, imported only when clustering
    from sklearn.cluster import HDBSCAN  # noqa: PLC0415 - as above

    n = len(documents)
    size = min_size if min_size is not None else min_cluster_size(n)
    if n < 2 * size:
        return Clustering(
            [NOISE] * n,
            {NOISE: Family(NOISE, "unclustered", (), tuple(range(min(n, EXEMPLARS))), n)} if n else {},
        )
    tfidf, points, terms = _embed(documents)
    fit = _sample(n, FIT_CAP)
    raw = HDBSCAN(
        min_cluster_size=size, min_samples=min(size, 3), cluster_selection_method="leaf", copy=True
    ).fit_predict(points[fit])
    labels = np.full(n, NOISE, dtype=np.int64)
    labels[fit] = raw
    found = sorted({int(x) for x in raw if x != NOISE})
    centroids = (
        np.array([points[labels == k].mean(axis=0) for k in found])
        if found
        else np.zeros((0, points.shape[1]))
    )
    if n > len(fit) and found:
        _assign(points, labels, np.array(fit), centroids, found)
    # Renumber by size (largest first), ties by first member, so ids are stable for the same input.
    order = sorted(found, key=lambda k: (-int((labels == k).sum()), int(np.argmax(labels == k))))
    remap = {old: new for new, old in enumerate(order)}
    labels = np.array([remap.get(int(x), NOISE) for x in labels], dtype=np.int64)
    return Clustering([int(x) for x in labels], _describe(tfidf, points, terms, labels))


def _assign(points: Any, labels: Any, fit: Any, centroids: Any, found: list[int]) -> None:
    """Label the programs left out of the fit: nearest centroid, if as close as its 5th-percentile member."""
    import numpy as np  # noqa: PLC0415 - heavy, imported only when clustering

    cos = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    floor = np.array([np.percentile(points[fit][labels[fit] == k] @ cos[i], 5) for i, k in enumerate(found)])
    rest = np.setdiff1d(np.arange(len(points)), fit)
    sims = points[rest] @ cos.T
    best = sims.argmax(axis=1)
    ok = sims[np.arange(len(rest)), best] >= floor[best]
    labels[rest[ok]] = np.array(found)[best[ok]]


def _describe(tfidf: Any, points: Any, terms: list[str], labels: Any) -> dict[int, Family]:
    import numpy as np  # noqa: PLC0415 - heavy, imported only when clustering

    overall = np.asarray(tfidf.mean(axis=0)).ravel()
    families: dict[int, Family] = {}
    for k in sorted({int(x) for x in labels}):
        members = np.flatnonzero(labels == k)
        centroid = np.asarray(tfidf[members].mean(axis=0)).ravel()
        lift = centroid - overall
        top = tuple(terms[i] for i in np.argsort(-lift)[:TOP_FEATURES] if lift[i] > 0)
        center = points[members].mean(axis=0)
        exemplars = tuple(int(members[i]) for i in np.argsort(-(points[members] @ center))[:EXEMPLARS])
        label = " ".join(t.removeprefix("ast:") for t in top[:3])
        name = "unclustered" if k == NOISE else f"F{k}: {label}"
        families[k] = Family(k, name, top, exemplars, len(members))
    return families
