"""Near-duplicates and novelty from MinHash signatures of token shingles (datasketch).

A program's shingles are its token 3-grams (``features.tokens``: literals abstracted), so programs that
differ only in constants or a small edit share most shingles. Jaccard similarity is estimated from
``NUM_PERM`` MinHash permutations and candidates are found with MinHash LSH, so neither step compares
every pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasketch import MinHash

NUM_PERM = 128
SEED = 1  # fixed, so signatures (and so scorecards) are reproducible
SHINGLE = 3
NEAR_DUPLICATE_JACCARD = 0.7  # at or above (estimated): a near-duplicate
NOVELTY_JACCARD = 0.5  # below this against every reference program: novel


def shingles(tokens: Sequence[str]) -> list[bytes]:
    """Token ``SHINGLE``-grams as bytes; a program shorter than that is one shingle."""
    if len(tokens) < SHINGLE:
        return ["\x1f".join(tokens).encode()]
    return sorted({"\x1f".join(tokens[i : i + SHINGLE]).encode() for i in range(len(tokens) - SHINGLE + 1)})


def signatures(token_lists: Sequence[Sequence[str]]) -> list[MinHash]:
    """One MinHash per token list."""
    from datasketch import MinHash  # noqa: PLC0415 - numpy-backed, imported only when programs are analysed

    if not token_lists:
        return []
    return list(MinHash.bulk([shingles(t) for t in token_lists], num_perm=NUM_PERM, seed=SEED))


def _index(hashes: Sequence[MinHash], threshold: float) -> Any:  # a datasketch MinHashLSH
    from datasketch import MinHashLSH  # noqa: PLC0415 - imported only when programs are analysed

    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    with lsh.insertion_session() as session:
        for i, h in enumerate(hashes):
            session.insert(i, h, check_duplication=False)
    return lsh


@dataclass(frozen=True)
class Groups:
    """Near-duplicate groups: ``group[i]`` is the representative index of program ``i``'s group."""

    group: list[int]

    def count(self) -> int:
        """How many groups (distinct programs up to near-duplication)."""
        return len(set(self.group))


def near_duplicates(hashes: Sequence[MinHash], threshold: float = NEAR_DUPLICATE_JACCARD) -> Groups:
    """Union programs whose estimated Jaccard similarity is at least ``threshold``."""
    parent = list(range(len(hashes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    lsh = _index(hashes, threshold)
    for i, h in enumerate(hashes):
        for j in lsh.query(h):
            if j != i and h.jaccard(hashes[j]) >= threshold:
                a, b = find(i), find(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return Groups([find(i) for i in range(len(hashes))])


def novelty(
    current: Sequence[MinHash], reference: Sequence[MinHash], threshold: float = NOVELTY_JACCARD
) -> list[float]:
    """Per current program, ``1 - max Jaccard`` to any reference program; similarities below ``threshold`` count as 0."""
    if not reference:
        return [1.0] * len(current)
    lsh = _index(reference, threshold)
    out: list[float] = []
    for h in current:
        best = max((h.jaccard(reference[j]) for j in lsh.query(h)), default=0.0)
        out.append(1.0 - best if best >= threshold else 1.0)
    return out
