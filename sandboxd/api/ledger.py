"""``/v1/ledger``: the auditor API. Entries with filters and cursor pagination, checkpoints, and proofs.

Every read runs on the ledger's own thread; proofs are computed from the stored leaf hashes on a worker
thread. Auditors check proofs against a *signed checkpoint*, never against this API's word alone.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query

from sandboxd.ledger import merkle
from sandboxd.ledger.entry import Kind
from sandboxd.ledger.families import REF_PATTERN, parse_ref
from sandboxd.ledger.query import EntryFilter
from sandboxd.ledger.sinks import checkpoint_json
from sandboxd.ledger.store import StoredEntry

from .deps import ServiceDep
from .ledger_schemas import (
    CheckpointList,
    CheckpointPublic,
    ConsistencyProof,
    EntryPage,
    EntryPublic,
    InclusionProof,
)
from .schemas import Problem

router = APIRouter(prefix="/v1/ledger", tags=["ledger"])
_ERRORS: dict[int | str, dict[str, object]] = {400: {"model": Problem}, 503: {"model": Problem}}
_ENTRY_ERRORS: dict[int | str, dict[str, object]] = {**_ERRORS, 404: {"model": Problem}}
MAX_LIMIT = 1000
_CURSOR_PREFIX = b"sandboxd-ledger:"


def encode_cursor(seq: int) -> str:
    """An opaque cursor meaning "after entry ``seq``"."""
    return base64.urlsafe_b64encode(_CURSOR_PREFIX + str(seq).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The seq a cursor points after; 400 if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    digits = raw.removeprefix(_CURSOR_PREFIX)
    if raw == digits or not digits.isdigit() or len(digits) > 18:
        raise HTTPException(400, "invalid cursor: pass back the next_cursor of a previous page")
    return int(digits)


def entry_time(moment: datetime | None) -> str | None:
    """A query time in the entries' format (naive times are UTC), so that strings compare as times."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _public(row: StoredEntry) -> EntryPublic:
    entry = json.loads(row.data)
    return EntryPublic(
        seq=row.seq, kind=entry["kind"], time=entry["time"], body=entry["body"], leaf_hash=_b64(row.leaf_hash)
    )


async def _family(service: ServiceDep, text: str) -> tuple[str, int]:
    """The (set, family) a ref names; 404 if the set is not stored or has no such family."""
    set_id, family = parse_ref(text)
    found = await service.ledger.call(lambda store: store.family_set(set_id))
    if found is None:
        raise HTTPException(
            404,
            f"no family set {set_id} in this ledger: it was never recorded here, or it is older than the "
            "sets kept; take a family ref from a recent scorecard",
        )
    if family not in found.families:
        known = ", ".join(str(f) for f in found.families) or "none"
        raise HTTPException(404, f"family set {set_id} has no family {family} (its families: {known})")
    return set_id, family


@router.get("/entries", responses=_ENTRY_ERRORS)
async def list_entries(
    service: ServiceDep,
    *,
    kind: Kind | None = None,
    verdict: Annotated[str | None, Query(max_length=64, description="status (runs) or reason (AZR)")] = None,
    decision: Literal["allow", "warn", "veto"] | None = None,
    rule: Annotated[str | None, Query(min_length=1, max_length=200, description="a watchdog rule id")] = None,
    task_type: Literal["deduction", "abduction", "induction"] | None = None,
    family: Annotated[
        str | None,
        Query(
            pattern=REF_PATTERN,
            description="a family ref from a scorecard, <family set>:<family id>: that family's proposals "
            "and the answers checked against them",
        ),
    ] = None,
    since: Annotated[datetime | None, Query(description="inclusive, RFC 3339")] = None,
    until: Annotated[datetime | None, Query(description="exclusive, RFC 3339")] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> EntryPage:
    """Entries in seq order, filtered (all conditions must hold), a page at a time."""
    if rule is not None and any(c.isspace() for c in rule):
        raise HTTPException(400, "rule ids contain no whitespace")
    start, end = entry_time(since), entry_time(until)
    if start is not None and end is not None and start >= end:
        raise HTTPException(400, "since must be before until")
    flt = EntryFilter(
        kind=None if kind is None else kind.value,
        verdict=verdict,
        decision=decision,
        rule=rule,
        task_type=task_type,
        since=start,
        until=end,
        family=None if family is None else await _family(service, family),
    )
    after = -1 if cursor is None else decode_cursor(cursor)
    rows = await service.ledger.call(lambda store: store.query(flt, after, limit + 1))
    page = rows[:limit]
    more = len(rows) > limit
    return EntryPage(
        entries=[_public(row) for row in page], next_cursor=encode_cursor(page[-1].seq) if more else None
    )


@router.get("/checkpoints", responses=_ERRORS)
async def list_checkpoints(
    service: ServiceDep, limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100
) -> CheckpointList:
    """The latest signed checkpoints, oldest first, with the verifier key the log recorded."""
    stored, vkey = await service.ledger.call(lambda store: (store.checkpoints(), store.vkey()))
    origin = service.ledger.origin
    return CheckpointList(
        origin=origin,
        vkey=vkey,
        checkpoints=[CheckpointPublic(**checkpoint_json(origin, cp)) for cp in stored[-limit:]],
    )


async def _leaves(service: ServiceDep, size: int) -> list[bytes]:
    leaves = await service.ledger.call(lambda store: store.leaf_hashes(size))
    if len(leaves) < size:
        raise HTTPException(400, f"tree_size {size} exceeds the log's {len(leaves)} entries")
    return leaves


@router.get("/proof/inclusion", responses=_ERRORS)
async def inclusion(
    service: ServiceDep,
    seq: Annotated[int, Query(ge=0)],
    tree_size: Annotated[int | None, Query(ge=1, description="default: the whole log")] = None,
) -> InclusionProof:
    """The audit path proving entry ``seq`` is in the tree of the first ``tree_size`` entries."""
    size = tree_size if tree_size is not None else await service.ledger.call(lambda store: store.size())
    if seq >= size:
        raise HTTPException(400, f"seq {seq} is not below tree_size {size}")
    leaves = await _leaves(service, size)
    path, root = await asyncio.to_thread(
        lambda: (merkle.inclusion_proof(seq, leaves, size), merkle.root(leaves, size))
    )
    return InclusionProof(
        seq=seq,
        tree_size=size,
        leaf_hash=_b64(leaves[seq]),
        root_hash=_b64(root),
        audit_path=[_b64(node) for node in path],
    )


@router.get("/proof/consistency", responses=_ERRORS)
async def consistency(
    service: ServiceDep, first: Annotated[int, Query(ge=0)], second: Annotated[int, Query(ge=1)]
) -> ConsistencyProof:
    """The proof that the tree of ``first`` entries is a prefix of the tree of ``second`` entries."""
    if first > second:
        raise HTTPException(400, f"first {first} is larger than second {second}")
    leaves = await _leaves(service, second)
    proof, old, new = await asyncio.to_thread(
        lambda: (
            merkle.consistency_proof(first, leaves, second),
            merkle.root(leaves, first),
            merkle.root(leaves, second),
        )
    )
    return ConsistencyProof(
        first=first,
        second=second,
        first_root=_b64(old),
        second_root=_b64(new),
        proof=[_b64(node) for node in proof],
    )
