"""The tokens file: one JSON object per line, holding the sha256 of a token, never the token itself.

A line looks like::

    {"id": "tok_3f9a1c2e", "role": "trainer", "sha256": "<64 hex>", "created": "2026-11-25T12:00:00Z",
     "rate_per_second": 20.0}

Blank lines are ignored. Any other malformed line, a duplicate id or a duplicate hash fails the whole load,
so that a typo never silently drops (or keeps) a token.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sandboxd.exceptions import ConfigurationError

from .roles import Role

TOKEN_PREFIX = "sbx_"  # noqa: S105 - a marker that makes leaked tokens greppable, not a secret


class TokenEntry(BaseModel):
    """One line of the tokens file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    role: Role
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created: datetime
    rate_per_second: float | None = Field(None, gt=0)  # None: no rate limit


def hash_token(token: str) -> str:
    """The sha256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh plain token (shown once, never stored)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def load_tokens(path: Path) -> list[TokenEntry]:
    """Every entry of ``path``; raises ConfigurationError on any malformed line or duplicate."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read tokens file {path}: {exc}") from exc
    entries: list[TokenEntry] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(TokenEntry.model_validate(json.loads(line)))
        except (ValueError, ValidationError) as exc:
            raise ConfigurationError(f"{path}:{number}: malformed token entry: {exc}") from exc
    for field in ("id", "sha256"):
        values = [getattr(entry, field) for entry in entries]
        if len(set(values)) != len(values):
            raise ConfigurationError(f"{path}: duplicate token {field}")
    return entries


def create_token(path: Path, role: Role, rate_per_second: float | None = None) -> tuple[TokenEntry, str]:
    """Append a hashed entry for a fresh token to ``path`` (mode 0600) and return it with the plain token."""
    existing = load_tokens(path) if path.exists() else []
    taken = {entry.id for entry in existing}
    token_id = "tok_" + secrets.token_hex(4)
    while token_id in taken:  # pragma: no cover - 32 random bits
        token_id = "tok_" + secrets.token_hex(4)
    token = new_token()
    entry = TokenEntry(
        id=token_id,
        role=role,
        sha256=hash_token(token),
        created=datetime.now(UTC).replace(microsecond=0),
        rate_per_second=rate_per_second,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as out:
        out.write(entry.model_dump_json(exclude_none=True) + "\n")
    return entry, token
