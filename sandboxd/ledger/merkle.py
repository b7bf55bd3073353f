"""RFC 6962 Merkle tree hashing, inclusion and consistency proofs, and their verifiers.

Every function works on leaf *hashes* (``leaf_hash(data)``), so callers hash each entry once. The tree of
``n`` leaves splits at ``k``, the largest power of two below ``n`` (RFC 6962 section 2.1). Proof builders
follow the RFC's recursive ``PATH`` and ``SUBPROOF`` definitions; the verifiers follow the iterative
algorithms of RFC 9162 sections 2.1.3.2 and 2.1.4.2, so the two sides are independent implementations.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _mth(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    n = hi - lo
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[lo]
    k = _split(n)
    return node_hash(_mth(leaves, lo, lo + k), _mth(leaves, lo + k, hi))


def root(leaves: Sequence[bytes], size: int | None = None) -> bytes:
    """The Merkle tree hash of the first ``size`` leaf hashes (default: all of them)."""
    n = len(leaves) if size is None else size
    if not 0 <= n <= len(leaves):
        raise ValueError(f"size {n} outside 0..{len(leaves)}")
    return _mth(leaves, 0, n)


def _path(m: int, leaves: Sequence[bytes], lo: int, hi: int) -> list[bytes]:
    n = hi - lo
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(m, leaves, lo, lo + k), _mth(leaves, lo + k, hi)]
    return [*_path(m - k, leaves, lo + k, hi), _mth(leaves, lo, lo + k)]


def inclusion_proof(index: int, leaves: Sequence[bytes], size: int | None = None) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of the first ``size`` leaves, bottom up."""
    n = len(leaves) if size is None else size
    if not 0 <= index < n <= len(leaves):
        raise ValueError(f"need 0 <= index {index} < size {n} <= {len(leaves)}")
    return _path(index, leaves, 0, n)


def _subproof(m: int, leaves: Sequence[bytes], lo: int, hi: int, complete: bool) -> list[bytes]:
    n = hi - lo
    if m == n:
        return [] if complete else [_mth(leaves, lo, hi)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves, lo, lo + k, complete), _mth(leaves, lo + k, hi)]
    return [*_subproof(m - k, leaves, lo + k, hi, False), _mth(leaves, lo, lo + k)]


def consistency_proof(old_size: int, leaves: Sequence[bytes], size: int | None = None) -> list[bytes]:
    """The proof that the tree of ``old_size`` leaves is a prefix of the tree of ``size`` leaves."""
    n = len(leaves) if size is None else size
    if not 0 <= old_size <= n <= len(leaves):
        raise ValueError(f"need 0 <= old size {old_size} <= size {n} <= {len(leaves)}")
    if old_size == 0:
        return []
    return _subproof(old_size, leaves, 0, n, True)


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes
) -> bool:
    """True if ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree of ``size`` with ``expected_root``."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == expected_root


def verify_consistency(
    old_size: int, size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True if ``proof`` shows the tree (``old_size``, ``old_root``) is a prefix of (``size``, ``new_root``)."""
    if not 0 <= old_size <= size:
        return False
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if old_size == size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root


class CompactRange:
    """An append-only accumulator: the perfect subtrees of the leaves so far, giving any prefix root in O(log n).

    RFC 6962's split puts the largest perfect subtree on the left, so the root is the right fold of the
    stack: ``node(s0, node(s1, ... s_last))``.
    """

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[bytes] = []

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash, merging equal-height subtrees."""
        self._stack.append(leaf)
        self.size += 1
        n = self.size
        while not n & 1:
            right = self._stack.pop()
            self._stack[-1] = node_hash(self._stack[-1], right)
            n >>= 1

    def root(self) -> bytes:
        """The Merkle tree hash of every leaf appended so far."""
        if not self._stack:
            return EMPTY_ROOT
        r = self._stack[-1]
        for s in reversed(self._stack[:-1]):
            r = node_hash(s, r)
        return r
