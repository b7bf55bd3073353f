"""The ``sandboxd`` command line.

Each command group is a ``register_*`` function that adds its subparser and sets ``handler`` on the parsed
namespace. To add a group (policy, ledger, token, scorecard), write its ``register`` function, here or in a
small module of its own, and append it to ``GROUPS``. Handlers import heavy dependencies lazily (hence the
``noqa: PLC0415`` markers), so that ``sandboxd image tag`` never imports FastAPI. Handlers return exit codes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TypeAlias

from sandboxd import image  # stdlib-only, cheap to import
from sandboxd.auth.cli import register_token  # imports the tokens model only in its handlers
from sandboxd.ledger.cli import register_ledger  # imports the ledger only in its handlers
from sandboxd.scorecard.cli import register_scorecard  # imports the analysis stack only in its handler
from sandboxd.watchdog.cli import register_policy  # imports pydantic/yaml only in its handlers

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler = Callable[[argparse.Namespace], int]


def _serve(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415 - imported lazily, see the module docstring
    from pydantic import ValidationError  # noqa: PLC0415 - imported lazily, see the module docstring

    from sandboxd.api.app import create_app  # noqa: PLC0415 - imported lazily, see the module docstring
    from sandboxd.settings import Settings  # noqa: PLC0415 - imported lazily, see the module docstring

    # Flags go to the constructor, not to model_copy(update=...), so that the safety validators still run:
    # ``--host 0.0.0.0`` must be refused just like SANDBOXD_HOST=0.0.0.0 is.
    overrides = {
        name: value for name in ("host", "port", "workers") if (value := getattr(args, name)) is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        print(f"sandboxd: invalid settings: {exc}", file=sys.stderr)
        return 2
    from sandboxd.logs import configure  # noqa: PLC0415 - imported lazily, see the module docstring

    configure(logging.INFO)
    from sandboxd.workers import serve_workers, sweep_stale  # noqa: PLC0415 - imported lazily, see the module docstring

    if settings.workers > 1:
        return serve_workers(settings)
    asyncio.run(sweep_stale(settings))  # containers a multi-worker run left under per-worker labels
    from sandboxd.heap import settle  # noqa: PLC0415 - imported lazily, see the module docstring

    app = create_app(settings)
    settle()
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", log_config=None)
    return 0


def register_serve(subparsers: Subparsers) -> None:
    """``sandboxd serve``: run the HTTP API."""
    parser = subparsers.add_parser("serve", help="run the HTTP API (settings come from SANDBOXD_* variables)")
    parser.add_argument("--host", help="address to bind (overrides SANDBOXD_HOST)")
    parser.add_argument("--port", type=int, help="port to bind (overrides SANDBOXD_PORT)")
    parser.add_argument(
        "--workers", type=int, help="worker processes, metrics merged over them (overrides SANDBOXD_WORKERS)"
    )
    parser.set_defaults(handler=_serve)


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _image_build(args: argparse.Namespace) -> int:
    try:
        tag = image.build(args.method, force=args.force, progress=_to_stderr)
    except image.ImageBuildError as exc:
        print(f"sandboxd: image build failed: {exc}", file=sys.stderr)
        return 1
    print(tag)
    return 0


def _image_tag(args: argparse.Namespace) -> int:
    print(image.runner_image_tag())
    return 0


def register_image(subparsers: Subparsers) -> None:
    """``sandboxd image build|tag``: build or name the runner image."""
    parser = subparsers.add_parser("image", help="build or name the runner image")
    commands = parser.add_subparsers(dest="image_command", required=True, metavar="COMMAND")
    build = commands.add_parser("build", help="build the runner image unless it is present; print its tag")
    build.add_argument("--method", choices=image.METHODS, default="auto", help="default: %(default)s")
    build.add_argument("--force", action="store_true", help="rebuild even if the image is present")
    build.set_defaults(handler=_image_build)
    tag = commands.add_parser("tag", help="print the content-addressed tag of the runner image")
    tag.set_defaults(handler=_image_tag)


GROUPS: list[Callable[[Subparsers], None]] = [
    register_serve,
    register_image,
    register_policy,
    register_ledger,
    register_token,
    register_scorecard,
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered command group."""
    parser = argparse.ArgumentParser(prog="sandboxd", description="Hardened code-execution service.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in GROUPS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the chosen command and return its exit code."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
