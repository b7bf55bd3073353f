"""Roles, and which role may call what. Stdlib only, so the CLI can import it cheaply."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a token may do. ``admin`` may do everything the others may."""

    trainer = "trainer"  # runs, batches, azr and run_code
    auditor = "auditor"  # read-only endpoints (ledger, policies, scorecards, watchdog state)
    reviewer = "reviewer"  # human spot checks: read the review queue, label items (docs/reviews.md)
    admin = "admin"  # everything, including reloads, throttle resume and token management


def allows(have: Role, need: Role) -> bool:
    """Whether a token of role ``have`` may call an endpoint that needs ``need``."""
    return have is Role.admin or have is need
