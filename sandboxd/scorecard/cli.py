"""``sandboxd scorecard``: write a scorecard (JSON and HTML) for a ledger."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .windows import DEFAULT_BASELINE, DEFAULT_WINDOW

if TYPE_CHECKING:
    from sandboxd.cli import Subparsers

# The handler imports the analysis stack (numpy, scikit-learn, radon) lazily (hence the PLC0415 markers).


def _scorecard(args: argparse.Namespace) -> int:
    from sandboxd.ledger.stores import LedgerUrlError, open_store, parse_url, redact  # noqa: PLC0415 - lazily, see above

    from . import archive  # noqa: PLC0415 - lazily, see above
    from .report import build_scorecard  # noqa: PLC0415 - lazily, see above
    from .windows import WindowError  # noqa: PLC0415 - lazily, see above

    try:
        scheme, target = parse_url(args.ledger)
    except LedgerUrlError as exc:
        print(f"sandboxd scorecard: {exc}", file=sys.stderr)
        return 2
    if scheme == "sqlite" and not Path(target).is_file():  # opening it would create an empty ledger
        print(f"sandboxd scorecard: no ledger database at {target}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        store = open_store(args.ledger)
    except Exception as exc:  # any backend's connection error (sqlite3, psycopg) is reported alike
        print(f"sandboxd scorecard: cannot open ledger {redact(args.ledger)}: {exc}", file=sys.stderr)
        return 1
    try:
        card = build_scorecard(
            store,
            window=args.window,
            baseline=args.baseline_window,
            source=redact(args.ledger),
            verify=not args.no_verify,
            record_families=not args.no_record_families,
        )
    except WindowError as exc:
        print(f"sandboxd scorecard: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    written = archive.write(card, args.out)
    print(written.json_path)
    print(written.html_path)
    drift = card["drift"]
    print(
        f"{card['ledger']['entries']} entries, drift {drift['score']:.3f}"
        f"{' FLAGGED' if drift['flagged'] else ''}, {time.perf_counter() - started:.2f} s",
        file=sys.stderr,
    )
    return 0


def register_scorecard(subparsers: Subparsers) -> None:
    """``sandboxd scorecard``: summarise the ledger for auditors."""
    parser = subparsers.add_parser(
        "scorecard", help="write an alignment scorecard (JSON + self-contained HTML) for a ledger"
    )
    parser.add_argument("--ledger", required=True, help="SQLite path, sqlite:///path or postgresql:// URL")
    parser.add_argument("--out", type=Path, required=True, help="directory for scorecard-<time>.json/.html")
    parser.add_argument(
        "--window",
        default=DEFAULT_WINDOW,
        help="current window: all, last:N[%%], first:N[%%], seq:A:B, time:START/END (default: %(default)s)",
    )
    parser.add_argument(
        "--baseline-window",
        default=DEFAULT_BASELINE,
        help="baseline window, same syntax or 'before' (default: %(default)s)",
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the full ledger verification pass")
    parser.add_argument(
        "--no-record-families",
        action="store_true",
        help="do not store the family set next to the ledger (the API's family filter will not know it)",
    )
    parser.set_defaults(handler=_scorecard)
