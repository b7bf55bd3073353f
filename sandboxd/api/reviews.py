"""``/v1/reviews``: the human spot-check queue and its labels (Role.reviewer; docs/reviews.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, status

from sandboxd.api.auth import Credentials
from sandboxd.auth.keyring import Keyring
from sandboxd.reviews.desk import AlreadyLabelled, UnknownItem
from sandboxd.reviews.store import ReviewItem

from .deps import ServiceDep
from .ledger import decode_cursor, encode_cursor
from .review_schemas import LabelCreate, LabelPublic, ReviewItemPublic, ReviewQueuePage
from .schemas import Problem

router = APIRouter(prefix="/v1/reviews", tags=["reviews"])
MAX_LIMIT = 500
_MAX_ITEM = 2**62
_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": Problem},
    404: {"model": Problem},
    409: {"model": Problem},
    422: {"model": Problem},
    503: {"model": Problem},
}


def _public(item: ReviewItem) -> ReviewItemPublic:
    return ReviewItemPublic(
        id=item.seq,
        kind=item.kind,  # only task_proposed and answer_checked are ever queued (validated here)
        task_key=item.task_key,
        policy=item.policy,
        queued_at=item.time,
        entry=item.body,
    )


def reviewer_of(request: Request, credentials: Credentials) -> str:
    """The id of the calling token (the router's ``require`` already admitted it), or ``anonymous``."""
    keyring: Keyring | None = request.app.state.keyring
    entry = None if keyring is None or credentials is None else keyring.authenticate(credentials.credentials)
    return "anonymous" if entry is None else entry.id


@router.get("/queue", responses=_ERRORS)
async def queue(
    service: ServiceDep,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> ReviewQueuePage:
    """Sampled items without a label, oldest first."""
    after = decode_cursor(cursor) if cursor else -1
    rows = await service.reviews.pending(after, limit + 1)
    page = rows[:limit]
    more = len(rows) > limit
    return ReviewQueuePage(
        items=[_public(item) for item in page], next_cursor=encode_cursor(page[-1].seq) if more else None
    )


@router.post("/{item}/label", status_code=status.HTTP_201_CREATED, responses=_ERRORS)
async def label(
    item: Annotated[int, Path(ge=0, lt=_MAX_ITEM)],
    body: LabelCreate,
    service: ServiceDep,
    request: Request,
    credentials: Credentials,
) -> LabelPublic:
    """Approve or flag an item; the label is appended to the ledger before this answers."""
    reviewer = reviewer_of(request, credentials)
    try:
        done, _ = await service.reviews.label(item, body.label, body.comment, reviewer)
    except UnknownItem as exc:
        raise HTTPException(404, str(exc)) from exc
    except AlreadyLabelled as exc:
        raise HTTPException(409, str(exc)) from exc
    assert done.ledger_seq is not None  # settled labels always have one
    return LabelPublic(
        item=done.item,
        label=done.label,
        comment=done.comment,
        reviewer=done.reviewer,
        time=done.time,
        ledger_seq=done.ledger_seq,
    )
