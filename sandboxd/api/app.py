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
from sandboxd.reload import Reloader
from sandboxd.scorecard.schedule import ScorecardScheduler
from sandboxd.service import Service
from sandboxd.settings import Settings

from . import admin, azr, errors, fusion, health, ledger, reviews, runs, scorecards, tripwires, watchdog
from .admission import Admission, AdmissionMiddleware
from .auth import require
from .bodylimit import BodyLimitMiddleware
from .drain import Drain
from .observability import ObservabilityMiddleware
from .throttling import admit

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
    admission = Admission(settings.max_inflight_requests, settings.max_inflight_body_bytes)
    # Periodic scorecards (off unless SANDBOXD_SCORECARD_INTERVAL_SECONDS is set); their drift score
    # feeds the throttle's confidence (docs/scorecards.md, docs/safety.md).
    scorecards_schedule = ScorecardScheduler.from_settings(settings, on_drift=service.sentinel.observe_drift)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        drain = Drain(admission, service, settings.shutdown_grace_seconds)
        drain.install()  # SIGTERM drains in-flight runs first (docs/operations-faults.md)
        if scorecards_schedule is not None:
            scorecards_schedule.start()
        try:
            yield
        finally:
            drain.uninstall()
            if scorecards_schedule is not None:
                await scorecards_schedule.stop()
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
    app.state.admission = admission
    app.state.reloader = Reloader(service)
    app.state.scorecards_schedule = scorecards_schedule
    app.add_middleware(AdmissionMiddleware, admission=admission)  # inside the body cap: 413 comes first
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ObservabilityMiddleware, metrics=service.metrics)  # outermost: sees every answer
    errors.install(app)
    app.include_router(health.router)
    app.include_router(
        health.metrics_router, dependencies=[require(None)] if settings.metrics_require_token else []
    )
    trainer = [require(Role.trainer)]
    throttled = [*trainer, admit()]  # auth first, then the throttle (docs/safety.md)
    app.include_router(runs.router, dependencies=throttled)
    app.include_router(azr.router, dependencies=throttled)
    app.include_router(fusion.router, dependencies=throttled)
    app.include_router(tripwires.router, dependencies=trainer)
    app.include_router(watchdog.router, dependencies=[require(Role.auditor)])
    app.include_router(admin.router, dependencies=[require(Role.admin)])
    app.include_router(ledger.router, dependencies=[require(Role.auditor)])
    app.include_router(scorecards.router, dependencies=[require(Role.auditor)])
    app.include_router(reviews.router, dependencies=[require(Role.reviewer)])  # docs/reviews.md
    return app
