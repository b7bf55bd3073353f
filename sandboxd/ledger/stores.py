"""Choose a ledger backend by URL: ``sqlite:///path/to/ledger.db`` (embedded) or ``postgresql://...``.

Backends are imported lazily from a typed table, so SQLite users never import psycopg.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:  # settings validate URLs with parse_url; keep that import free of cryptography
    from .note import Signer
    from .store import LedgerStore

Scheme = Literal["sqlite", "postgresql"]
BACKENDS: dict[Scheme, tuple[str, str]] = {
    "sqlite": ("sandboxd.ledger.sqlite", "SqliteLedgerStore"),
    "postgresql": ("sandboxd.ledger.postgres", "PostgresLedgerStore"),
}
_ALIASES: dict[str, Scheme] = {"sqlite": "sqlite", "postgresql": "postgresql", "postgres": "postgresql"}


class LedgerUrlError(ValueError):
    """A ledger URL that names no known backend, or an SQLite URL without a path."""


def parse_url(url: str) -> tuple[Scheme, str]:
    """The backend and its target: a file path for SQLite, the URL itself for PostgreSQL.

    A bare path (no ``scheme://``) is an SQLite file, so ``--db ledger.db`` keeps working.
    """
    if "://" not in url:
        if not url:
            raise LedgerUrlError("empty ledger URL")
        return "sqlite", url
    scheme = _ALIASES.get(urlsplit(url).scheme)
    if scheme is None:
        raise LedgerUrlError(f"ledger URL {redact(url)!r}: the scheme must be sqlite:// or postgresql://")
    if scheme == "sqlite":
        path = url.split("://", 1)[1]
        if not path.startswith("/") or path == "/":
            raise LedgerUrlError(
                f"ledger URL {url!r}: use sqlite:///relative/path or sqlite:////absolute/path"
            )
        return "sqlite", path[1:]
    return "postgresql", url


def redact(url: str) -> str:
    """The URL without its password, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def open_store(url: str, *, origin: str = "sandboxd/ledger", signer: Signer | None = None) -> LedgerStore:
    """Open (creating if needed) the ledger at ``url``."""
    scheme, target = parse_url(url)
    module, name = BACKENDS[scheme]
    if scheme == "sqlite":
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    backend = getattr(importlib.import_module(module), name)
    store: LedgerStore = backend(target, origin=origin, signer=signer)
    return store
