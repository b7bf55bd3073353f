"""``sandboxd ledger verify|export|proof``: audit a ledger database from the command line."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandboxd.cli import Subparsers

    from .store import LedgerStore

_DB_HELP = "the ledger: an SQLite file, sqlite:///path, or a postgresql:// URL"

# Handlers import the ledger (and so ``cryptography``) lazily (hence the PLC0415 markers).


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _open(db: str) -> LedgerStore | None:
    """Open the ledger at ``db`` (an SQLite path or a ``postgresql://`` URL); None (reported) if it is missing.

    A missing SQLite file is not created: opening it would make an empty ledger that verifies.
    """
    from .stores import LedgerUrlError, open_store, parse_url  # noqa: PLC0415 - imported lazily, see the module comment

    try:
        scheme, target = parse_url(db)
    except LedgerUrlError as exc:
        print(str(exc), file=sys.stderr)
        return None
    if scheme == "sqlite" and not Path(target).exists():
        print(f"no ledger database at {target}", file=sys.stderr)
        return None
    try:
        return open_store(db)
    except Exception as exc:  # the driver's errors (sqlite3, psycopg) differ; all mean "cannot open"
        print(f"cannot open the ledger: {exc}", file=sys.stderr)
        return None


def _verify(args: argparse.Namespace) -> int:
    from .note import NoteError, Verifier  # noqa: PLC0415 - imported lazily, see the module comment
    from .verify import verify  # noqa: PLC0415 - imported lazily, see the module comment

    try:
        verifier = None if args.key is None else Verifier.parse(args.key.read_text(encoding="ascii"))
    except (OSError, NoteError) as exc:
        print(f"cannot read key {args.key}: {exc}", file=sys.stderr)
        return 2
    store = _open(args.db)
    if store is None:
        return 2
    try:
        report = verify(store, verifier)
    finally:
        store.close()
    if report.ok:
        print(f"ok: {report.entries} entries, {report.checkpoints} checkpoints")
        return 0
    where = "" if report.first_bad_seq is None else f"first bad entry {report.first_bad_seq}: "
    print(f"FAIL {where}{report.reason}", file=sys.stderr)
    return 1


def _export(args: argparse.Namespace) -> int:
    store = _open(args.db)
    if store is None:
        return 2
    try:
        for row in store.entries():
            sys.stdout.write(row.data.decode("ascii") + "\n")
    finally:
        store.close()
    return 0


def _proof(args: argparse.Namespace) -> int:
    from . import merkle  # noqa: PLC0415 - imported lazily, see the module comment

    store = _open(args.db)
    if store is None:
        return 2
    try:
        leaves = [merkle.leaf_hash(row.data) for row in store.entries()]
    finally:
        store.close()
    size = len(leaves) if args.size is None else args.size
    if args.first is not None:
        if not 0 <= args.first <= size <= len(leaves):
            print(f"need 0 <= first {args.first} <= size {size} <= {len(leaves)}", file=sys.stderr)
            return 2
        consistency = {
            "first": args.first,
            "second": size,
            "first_root": _b64(merkle.root(leaves, args.first)),
            "second_root": _b64(merkle.root(leaves, size)),
            "proof": [_b64(h) for h in merkle.consistency_proof(args.first, leaves, size)],
        }
        print(json.dumps(consistency, indent=2))
        return 0
    if not 0 <= args.seq < size <= len(leaves):
        print(f"need 0 <= seq {args.seq} < size {size} <= {len(leaves)}", file=sys.stderr)
        return 2
    proof = {
        "seq": args.seq,
        "tree_size": size,
        "leaf_hash": _b64(leaves[args.seq]),
        "root_hash": _b64(merkle.root(leaves, size)),
        "audit_path": [_b64(h) for h in merkle.inclusion_proof(args.seq, leaves, size)],
    }
    print(json.dumps(proof, indent=2))
    return 0


def register_ledger(subparsers: Subparsers) -> None:
    """``sandboxd ledger verify|export|proof``: the tamper-evident ledger."""
    parser = subparsers.add_parser("ledger", help="verify, export and prove entries of the ledger")
    commands = parser.add_subparsers(dest="ledger_command", required=True, metavar="COMMAND")
    verify = commands.add_parser(
        "verify", help="recompute the tree and check every checkpoint; exit 1 if bad"
    )
    verify.add_argument("--db", required=True, help=_DB_HELP)
    verify.add_argument("--key", type=Path, help="verifier key file (default: the key recorded in the db)")
    verify.set_defaults(handler=_verify)
    export = commands.add_parser("export", help="write every entry as JSONL (canonical bytes) to stdout")
    export.add_argument("--db", required=True, help=_DB_HELP)
    export.set_defaults(handler=_export)
    proof = commands.add_parser(
        "proof", help="print an inclusion proof (--seq) or a consistency proof (--first) as JSON"
    )
    proof.add_argument("--db", required=True, help=_DB_HELP)
    which = proof.add_mutually_exclusive_group(required=True)
    which.add_argument("--seq", type=int, help="inclusion: the entry's seq (leaf index)")
    which.add_argument(
        "--first", type=int, help="consistency: the older tree size, proven a prefix of --size"
    )
    proof.add_argument("--size", type=int, help="tree size to prove against (default: all entries)")
    proof.set_defaults(handler=_proof)
