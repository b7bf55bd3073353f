"""Scorecards on disk: ``DIR/scorecard-<UTC time>.json`` and ``.html`` side by side, newest last by name."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .render import render_html

NAME = re.compile(r"^scorecard-(\d{8}T\d{6}(?:\.\d{6})?Z)\.json$")


@dataclass(frozen=True)
class Written:
    """Where a scorecard was written."""

    json_path: Path
    html_path: Path


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write(card: Mapping[str, Any], out_dir: Path, *, now: datetime | None = None) -> Written:
    """Write the JSON and HTML files (the HTML first, so a listed JSON always has its page)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S.%fZ")
    json_path = out_dir / f"scorecard-{stamp}.json"
    html_path = json_path.with_suffix(".html")
    _atomic_write(html_path, render_html(card))
    _atomic_write(json_path, json.dumps(card, indent=1, sort_keys=True, allow_nan=False) + "\n")
    return Written(json_path, html_path)


def listing(out_dir: Path) -> list[str]:
    """The scorecard ids (``scorecard-<time>``) in ``out_dir``, oldest first."""
    if not out_dir.is_dir():
        return []
    return sorted(p.stem for p in out_dir.iterdir() if NAME.match(p.name))


def path_of(out_dir: Path, card_id: str, suffix: str) -> Path | None:
    """The file of scorecard ``card_id`` (``.json`` or ``.html``) if it exists; ids are checked, not joined blindly."""
    if not NAME.match(card_id + ".json"):
        return None
    path = out_dir / f"{card_id}{suffix}"
    return path if path.is_file() else None
