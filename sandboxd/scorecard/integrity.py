"""The scorecard's integrity section: the Merkle root recomputed from the entry bytes, and the checkpoints."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from sandboxd.ledger import merkle
from sandboxd.ledger.store import LedgerStore, StoredCheckpoint, StoredEntry


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def merkle_section(rows: Sequence[StoredEntry], checkpoints: Sequence[StoredCheckpoint]) -> dict[str, Any]:
    """Tree size and root over the stored bytes, and the latest checkpoint with whether its root matches."""
    wanted = {cp.tree_size for cp in checkpoints}
    roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT} if 0 in wanted else {}
    tree = merkle.CompactRange()
    for row in rows:
        tree.append(merkle.leaf_hash(row.data))
        if tree.size in wanted:
            roots[tree.size] = tree.root()
    latest = max(checkpoints, key=lambda cp: cp.tree_size, default=None)
    checkpoint = None
    if latest is not None:
        checkpoint = {
            "tree_size": latest.tree_size,
            "root_hash": _b64(latest.root_hash),
            "timestamp": latest.timestamp,
            "note": latest.note,
            "matches_entries": roots.get(latest.tree_size) == latest.root_hash,
        }
    return {
        "tree_size": tree.size,
        "root_hash": _b64(tree.root()),
        "checkpoints": len(checkpoints),
        "latest_checkpoint": checkpoint,
        "unsigned_entries": tree.size - (latest.tree_size if latest else 0),
    }


def verification(store: LedgerStore) -> dict[str, Any]:
    """``sandboxd ledger verify`` with the key recorded in the store (auditors should still pin theirs)."""
    from sandboxd.ledger.verify import verify  # noqa: PLC0415 - needs cryptography; only when asked for

    report = verify(store, None)
    return {"ok": report.ok, "first_bad_seq": report.first_bad_seq, "reason": report.reason}
