"""``/v1/scorecards``: the alignment scorecards written by ``sandboxd scorecard`` or the scheduler.

Read-only (Role.auditor). Files are looked up only by ids that match the archive's name pattern, so a
request can never name a path outside the scorecard directory. The HTML is served with a
Content-Security-Policy that forbids scripts and external loads (the page has neither).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from sandboxd.scorecard import archive
from sandboxd.scorecard.render import CSP

from .schemas import Problem

router = APIRouter(prefix="/v1/scorecards", tags=["scorecards"])
_ERRORS: dict[int | str, dict[str, object]] = {404: {"model": Problem}}


def _directory(request: Request) -> Path:
    settings = request.app.state.settings
    directory: Path = settings.scorecard_dir or settings.data_dir / "scorecards"
    return directory


def _read(directory: Path, card_id: str) -> dict[str, Any]:
    path = archive.path_of(directory, card_id, ".json")
    if path is None:
        raise HTTPException(404, f"no scorecard {card_id!r}")
    card: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return card


@router.get("")
async def list_scorecards(request: Request) -> dict[str, list[dict[str, str]]]:
    """Every stored scorecard, newest first, with the URLs of its JSON and HTML."""
    ids = reversed(archive.listing(_directory(request)))
    return {
        "scorecards": [
            {"id": i, "json": f"/v1/scorecards/{i}", "html": f"/v1/scorecards/{i}/html"} for i in ids
        ]
    }


@router.get("/latest", responses=_ERRORS)
async def latest_scorecard(request: Request) -> dict[str, Any]:
    """The newest scorecard's JSON (404 before the first one is written)."""
    ids = archive.listing(_directory(request))
    if not ids:
        raise HTTPException(404, "no scorecard has been written yet")
    return _read(_directory(request), ids[-1])


@router.get("/{scorecard_id}", responses=_ERRORS)
async def get_scorecard(request: Request, scorecard_id: str) -> dict[str, Any]:
    """One scorecard's JSON."""
    return _read(_directory(request), scorecard_id)


@router.get("/{scorecard_id}/html", response_class=HTMLResponse, responses=_ERRORS)
async def get_scorecard_html(request: Request, scorecard_id: str) -> HTMLResponse:
    """One scorecard's self-contained HTML page."""
    path = archive.path_of(_directory(request), scorecard_id, ".html")
    if path is None:
        raise HTTPException(404, f"no scorecard {scorecard_id!r}")
    return HTMLResponse(
        path.read_text(encoding="utf-8"),
        headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"},
    )
