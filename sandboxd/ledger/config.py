"""The ledger's settings, resolved from ``Settings``, and its signing key."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sandboxd.settings import Settings

from .note import Signer

_ATTEMPTS = 5  # reads of a key file that another worker may be writing


@dataclass(frozen=True)
class LedgerConfig:
    """The ledger's settings, resolved: where it lives, who signs, when to checkpoint, where copies go."""

    url: str
    origin: str
    key_file: Path
    checkpoint_entries: int
    checkpoint_seconds: float
    sink_file: Path | None = None
    sink_webhook: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> LedgerConfig:
        return cls(
            url=settings.ledger_url or str(settings.data_dir / "ledger.db"),
            origin=settings.ledger_origin,
            key_file=settings.ledger_key_file or settings.data_dir / "ledger.key",
            checkpoint_entries=settings.ledger_checkpoint_entries,
            checkpoint_seconds=settings.ledger_checkpoint_seconds,
            sink_file=settings.ledger_checkpoint_file,
            sink_webhook=settings.ledger_checkpoint_webhook,
        )


def load_signer(origin: str, path: Path) -> Signer:
    """The signing key at ``path``, generated (0600) with its ``.pub`` on first start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(_ATTEMPTS - 1):
        try:
            return Signer.from_file(origin, path)
        except (FileExistsError, ValueError):  # another worker is creating it right now: read it again
            time.sleep(0.2)
    return Signer.from_file(origin, path)
