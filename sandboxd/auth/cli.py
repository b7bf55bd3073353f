"""``sandboxd token create|list``: manage the tokens file (docs/auth.md).

Handlers import the tokens model (and so pydantic) lazily, hence the PLC0415 markers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .roles import Role

if TYPE_CHECKING:
    from sandboxd.cli import Subparsers


def _create(args: argparse.Namespace) -> int:
    from sandboxd.exceptions import ConfigurationError  # noqa: PLC0415 - lazy, see the module docstring

    from .tokens import create_token  # noqa: PLC0415 - lazy, see the module docstring

    try:
        entry, token = create_token(args.file, Role(args.role), args.rate)
    except ConfigurationError as exc:
        print(f"sandboxd: {exc}", file=sys.stderr)
        return 2
    print(
        f"created {entry.id} ({entry.role.value}) in {args.file}; the token is shown only once",
        file=sys.stderr,
    )
    print(token)
    return 0


def _list(args: argparse.Namespace) -> int:
    from sandboxd.exceptions import ConfigurationError  # noqa: PLC0415 - lazy, see the module docstring

    from .tokens import load_tokens  # noqa: PLC0415 - lazy, see the module docstring

    try:
        entries = load_tokens(args.file)
    except ConfigurationError as exc:
        print(f"sandboxd: {exc}", file=sys.stderr)
        return 2
    for entry in entries:
        rate = "-" if entry.rate_per_second is None else f"{entry.rate_per_second:g}/s"
        print(f"{entry.id}\t{entry.role.value}\t{entry.created.isoformat()}\t{rate}")
    return 0


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def register_token(subparsers: Subparsers) -> None:
    """``sandboxd token create|list``: create hashed API tokens or list them."""
    parser = subparsers.add_parser("token", help="create or list API tokens (stored hashed)")
    commands = parser.add_subparsers(dest="token_command", required=True, metavar="COMMAND")
    create = commands.add_parser("create", help="append a hashed token; print the plain token once")
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    create.add_argument("--file", required=True, type=Path, help="tokens file (JSON lines, created 0600)")
    create.add_argument("--rate", type=_positive, help="requests per second for this token (default: none)")
    create.set_defaults(handler=_create)
    listing = commands.add_parser("list", help="show ids, roles and rates (never hashes)")
    listing.add_argument("--file", required=True, type=Path, help="tokens file")
    listing.set_defaults(handler=_list)
