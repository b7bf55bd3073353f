"""Open the review queue next to the ledger: the same URL (``sqlite:///...`` or ``postgresql://...``).

Backends are imported lazily, so SQLite users never import psycopg.
"""

from __future__ import annotations

from .store import ReviewStore


def open_review_store(url: str) -> ReviewStore:
    """Open (creating its tables if needed) the review queue in the ledger database at ``url``."""
    from sandboxd.ledger.stores import parse_url  # noqa: PLC0415 - keeps this module import-light

    scheme, target = parse_url(url)
    if scheme == "sqlite":
        from .sqlite import SqliteReviewStore  # noqa: PLC0415 - chosen by URL

        return SqliteReviewStore(target)
    from .postgres import PostgresReviewStore  # noqa: PLC0415 - psycopg only for PostgreSQL

    return PostgresReviewStore(target)
