"""``sandboxd serve --workers N``: several uvicorn worker processes behind one port.

The supervising process validates the settings, hands them to the workers through the environment
(each worker reads ``Settings()`` itself), points prometheus_client's multiprocess mode at a fresh
sample directory (:mod:`sandboxd.exposition`) and removes that directory when the workers are gone.

Containers: each worker has its own pools, and its own instance label ``<instance>.w<slot>``. A worker
claims the lowest free slot with a lock file that the kernel releases when the worker dies, so the
worker uvicorn restarts after a crash takes over the dead one's slot and, as every daemon does at
startup, removes that slot's orphans without touching its siblings' containers. Orphans under labels
no worker will claim (a run with more workers, or a single-worker run) are removed by the supervisor
before the workers start.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import shutil
from pathlib import Path
from typing import IO

import uvicorn
from fastapi import FastAPI

from .exceptions import SandboxdError
from .exposition import ENV, prepare_directory
from .settings import Settings

log = logging.getLogger(__name__)
MAX_WORKERS = 64  # Settings.workers' upper bound


def worker_instance(base: str, slot: int) -> str:
    """The container instance label of worker ``slot``."""
    return f"{base}.w{slot}"


def stale_instances(base: str, workers: int) -> list[str]:
    """Instance labels no worker of this run will sweep itself: the supervisor sweeps them first."""
    if workers == 1:
        return [worker_instance(base, slot) for slot in range(MAX_WORKERS)]
    return [base, *(worker_instance(base, slot) for slot in range(workers, MAX_WORKERS))]


async def sweep_stale(settings: Settings) -> int:
    """Remove this daemon's containers under :func:`stale_instances`; returns how many."""
    from .backends import load_backend  # noqa: PLC0415 - the engine SDK is only needed here
    from .service import INSTANCE_LABEL, MANAGED_LABEL  # noqa: PLC0415 - heavy; the CLI imports it anyway

    backend = load_backend(settings)
    removed = 0
    try:
        counts = await asyncio.gather(
            *(
                backend.remove_labelled({MANAGED_LABEL: "1", INSTANCE_LABEL: name})
                for name in stale_instances(settings.instance, settings.workers)
            )
        )
        removed = sum(counts)
    except SandboxdError as exc:  # the engine is down: the workers report it and recover by themselves
        log.warning("could not sweep containers of earlier worker layouts: %s", exc)
    finally:
        await backend.aclose()
    if removed:
        log.warning("removed %d orphaned sandbox containers of earlier worker layouts", removed)
    return removed


def claim_slot(directory: Path, workers: int) -> tuple[int, IO[str]]:
    """Lock the lowest free slot; the lock lasts as long as the returned file stays open."""
    for slot in range(workers):
        handle = (directory / f"worker-{slot}.lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return slot, handle
    raise SandboxdError(f"all {workers} worker slots in {directory} are taken")


def app() -> FastAPI:
    """The app of one worker process (a uvicorn factory): JSON logs, settings from the environment."""
    from sandboxd.api.app import create_app  # noqa: PLC0415 - after the worker's logging is set up
    from sandboxd.heap import settle  # noqa: PLC0415 - keeps this module cheap for the supervisor
    from sandboxd.logs import configure  # noqa: PLC0415 - keeps this module cheap for the supervisor

    configure(logging.INFO)
    base = Settings()
    slot, lock = claim_slot(Path(os.environ[ENV]), base.workers)
    application = create_app(Settings(instance=worker_instance(base.instance, slot)))
    application.state.worker_slot_lock = lock  # held for the life of the worker
    settle()
    log.info("worker %d serving as instance %s", slot, worker_instance(base.instance, slot))
    return application


def serve_workers(settings: Settings) -> int:
    """Run ``settings.workers`` workers until interrupted; returns the exit code."""
    longest = worker_instance(settings.instance, settings.workers - 1)
    try:
        Settings(instance=longest)
    except ValueError:
        log.error(
            "SANDBOXD_INSTANCE is too long for %d workers: %s must stay valid", settings.workers, longest
        )
        return 2
    asyncio.run(sweep_stale(settings))
    directory, created = prepare_directory(os.environ.get(ENV))
    os.environ[ENV] = str(directory)
    # Flags given to the supervisor reach the workers, whose Settings() read only the environment.
    os.environ["SANDBOXD_HOST"] = settings.host
    os.environ["SANDBOXD_PORT"] = str(settings.port)
    os.environ["SANDBOXD_WORKERS"] = str(settings.workers)
    log.info("serving with %d workers; merged metrics in %s", settings.workers, directory)
    try:
        uvicorn.run(
            "sandboxd.workers:app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level="info",
            log_config=None,
        )
    finally:
        if created:
            shutil.rmtree(directory, ignore_errors=True)
    return 0
