"""The app factory. No import-time singletons: everything hangs off ``app.state``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from sandboxd import __version__
from sandboxd.backends.base import Backend
from sandboxd.service import Service
from sandboxd.settings import Settings

from . import azr, errors, fusion, health, runs
from .bodylimit import BodyLimitMiddleware
from .observability import ObservabilityMiddleware

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, backend: Backend | None = None) -> FastAPI:
    settings = settings or Settings()
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
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ObservabilityMiddleware, metrics=service.metrics)  # outermost: sees every answer
    errors.install(app)
    app.include_router(health.router)
    app.include_router(runs.router)
    app.include_router(azr.router)
    app.include_router(fusion.router)
    return app
