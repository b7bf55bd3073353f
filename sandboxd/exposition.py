"""Prometheus exposition for one process or for several uvicorn workers.

With one worker, ``/metrics`` renders the app's own registry. With several (``sandboxd serve --workers N``)
every worker writes its samples to memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR`` and whichever
worker answers a scrape merges the files of all of them (prometheus_client's multiprocess mode), so a
counter is the sum over workers whichever worker Prometheus happens to reach. prometheus_client picks
the mode when it is first imported, so the directory must be in the environment before the workers
start: :func:`prepare_directory` is called by the supervising ``sandboxd serve`` process.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import InfoMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from . import __version__

ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_FILE = re.compile(r"^gauge_live\w+?_(\d+)\.db$")


def multiprocess_directory() -> Path | None:
    """The shared sample directory when this process is one of several workers, else None."""
    value = os.environ.get(ENV)
    return Path(value) if value else None


class BuildInfo(Collector):
    """``sandboxd_build_info{version,python} 1``: constant, so every worker reports the same series."""

    def collect(self) -> Iterator[InfoMetricFamily]:
        yield InfoMetricFamily(
            "sandboxd_build",
            "Build information.",
            value={"version": __version__, "python": platform.python_version()},
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def prune_dead_workers(directory: Path) -> list[int]:
    """Drop the live-gauge files of workers that are gone (crashed and restarted), so that a pool
    gauge does not keep counting containers of a dead worker. Returns the pids pruned."""
    pruned: set[int] = set()
    for path in directory.glob("gauge_live*.db"):
        match = _LIVE_FILE.match(path.name)
        if match and not _alive(pid := int(match.group(1))):
            pruned.add(pid)
    for pid in pruned:
        mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call] # prometheus_client leaves it untyped
    return sorted(pruned)


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition: ``registry`` alone, or the merge over all workers in multiprocess mode."""
    directory = multiprocess_directory()
    if directory is None:
        return generate_latest(registry)
    prune_dead_workers(directory)
    merged = CollectorRegistry()
    MultiProcessCollector(merged, path=str(directory))  # type: ignore[no-untyped-call] # untyped upstream
    merged.register(BuildInfo())
    return generate_latest(merged)


def prepare_directory(given: str | None) -> tuple[Path, bool]:
    """The directory for a multi-worker ``serve``: ``given`` emptied of stale sample files, or a fresh
    temporary one. Returns it and whether the caller created it (and so should remove it)."""
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):  # samples of a previous run would be added to this one's
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        return directory, False
    return Path(tempfile.mkdtemp(prefix="sandboxd-metrics-")), True
