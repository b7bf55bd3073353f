"""The app factory. No import-time singletons: everything hangs off ``app.state``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from sandboxd import __version__
from sandboxd.auth.keyring import Keyring
from sandboxd.auth.roles import Role
from sandboxd.auth.tokens import load_tokens
from sandboxd.backends.base import Backend
from sandboxd.service import Service
from sandboxd.settings import Settings

from . import azr, errors, fusion, health, runs
from .auth import require
from .bodylimit import BodyLimitMiddleware
from .observability import ObservabilityMiddleware

log = logging.getLogger(__name__)


def _keyring(settings: Settings) -> Keyring | None:
    """The tokens of ``settings.tokens_file``, loaded now so that a malformed file fails startup."""
    if settings.tokens_file is None:
        log.warning("authentication is DISABLED: set SANDBOXD_TOKENS_FILE in production (docs/auth.md)")
        return None
    entries = load_tokens(settings.tokens_file)
    log.info("authentication enabled: %d tokens from %s", len(entries), settings.tokens_file)
    return Keyring(entries)


def create_app(settings: Settings | None = None, *, backend: Backend | None = None) -> FastAPI:
    settings = settings or Settings()
    keyring = _keyring(settings)
    service = Service(settings, backend=backend)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="sandboxd",
        version=__version__,
        description="Hardened execution of untrusted Python for self-play code reasoners.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.settings = settings
    app.state.keyring = keyring
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ObservabilityMiddleware, metrics=service.metrics)  # outermost: sees every answer
    errors.install(app)
    app.include_router(health.router)
    app.include_router(
        health.metrics_router, dependencies=[require(None)] if settings.metrics_require_token else []
    )
    trainer = [require(Role.trainer)]
    app.include_router(runs.router, dependencies=trainer)
    app.include_router(azr.router, dependencies=trainer)
    app.include_router(fusion.router, dependencies=trainer)
    return app
