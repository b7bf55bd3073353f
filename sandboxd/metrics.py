"""Prometheus metric families. One :class:`Metrics` per app, on its own registry (no globals).

Each gauge names how several uvicorn workers combine (``multiprocess_mode``, see
:mod:`sandboxd.exposition`): per-worker amounts add up (``livesum``), states report the worst worker.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .exposition import BuildInfo
from .textcache import TextCache

_RUN_SECONDS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "sandboxd_runs", "Runs finished, by status and policy.", ["status", "policy"], registry=r
        )
        self.run_duration = Histogram(
            "sandboxd_run_duration_seconds",
            "Wall time of one run inside the sandbox.",
            ["policy"],
            buckets=_RUN_SECONDS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "sandboxd_queue_wait_seconds",
            "Time a request waited for a warm sandbox.",
            ["policy"],
            buckets=_RUN_SECONDS,
            registry=r,
        )
        self.batch_size = Histogram(
            "sandboxd_batch_size", "Runs per request.", ["policy"], buckets=_BATCH_SIZES, registry=r
        )
        self.pool_containers = Gauge(
            "sandboxd_pool_containers",
            "Sandbox containers by pool state.",
            ["policy", "state"],
            multiprocess_mode="livesum",  # every worker has its own pools
            registry=r,
        )
        self.container_start = Histogram(
            "sandboxd_container_start_seconds",
            "Time from create to a configured fork-server.",
            ["policy"],
            buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30),
            registry=r,
        )
        self.container_start_failures = Counter(
            "sandboxd_container_start_failures",
            "Sandbox containers that failed to start.",
            ["policy"],
            registry=r,
        )
        self.sandbox_deaths = Counter(
            "sandboxd_sandbox_deaths", "Sandboxes that died while serving a request.", ["policy"], registry=r
        )
        self.watchdog_decisions = Counter(
            "sandboxd_watchdog_decisions",
            "Static watchdog decisions, by decision and by rule that fired ('none' when none did).",
            ["decision", "rule"],
            registry=r,
        )
        self.http_requests = Counter(
            "sandboxd_http_requests",
            "HTTP requests by route template and status code.",
            ["route", "code"],
            registry=r,
        )
        self.http_duration = Histogram(
            "sandboxd_http_request_duration_seconds",
            "HTTP request duration by route template.",
            ["route"],
            buckets=_RUN_SECONDS,
            registry=r,
        )
        self.tripwire_events = Counter(
            "sandboxd_tripwire_events", "Tripwires that fired, by rule.", ["rule"], registry=r
        )
        self.alignment_confidence = Gauge(
            "sandboxd_alignment_confidence",
            "The watchdog's alignment-confidence score, from 0 (none) to 1 (full).",
            multiprocess_mode="livemin",  # the least confident worker
            registry=r,
        )
        self.throttle_band = Gauge(
            "sandboxd_throttle_band",
            "The throttle's band: 0 normal, 1 slow, 2 paused, 3 halted.",
            multiprocess_mode="livemax",  # the most restrictive worker
            registry=r,
        )
        self.ledger_entries = Counter(
            "sandboxd_ledger_entries",
            "Entries appended to the curriculum ledger, by kind.",
            ["kind"],
            registry=r,
        )
        self.ledger_checkpoint_timestamp = Gauge(
            "sandboxd_ledger_last_checkpoint_timestamp_seconds",
            "Unix time of the ledger's latest signed checkpoint (0: none yet).",
            multiprocess_mode="max",  # the newest checkpoint any worker signed
            registry=r,
        )
        self.text_cache_lookups = Counter(
            "sandboxd_text_cache_lookups",
            "Lookups in the cache of texts' checks and bytecode kept across requests, by result (hit, miss).",
            ["result"],
            registry=r,
        )
        self.text_cache_bytes = Gauge(
            "sandboxd_text_cache_bytes",
            "Estimated bytes held by the cache of texts' checks and bytecode.",
            multiprocess_mode="livesum",  # every worker has its own cache
            registry=r,
        )
        r.register(BuildInfo())  # sandboxd_build_info; a collector, since Info has no multiprocess mode


def publish_text_cache(metrics: Metrics, cache: TextCache) -> None:
    """Add the cache's lookups since the last call to the counters and set its size (once per batch:
    a counter's ``inc`` on every lookup would cost more than the lookup)."""
    hits, misses = cache.take_counts()
    if hits:
        metrics.text_cache_lookups.labels(result="hit").inc(hits)
    if misses:
        metrics.text_cache_lookups.labels(result="miss").inc(misses)
    metrics.text_cache_bytes.set(cache.bytes)
