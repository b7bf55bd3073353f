"""A real Prometheus (the Debian ``prometheus`` binary) on loopback, for scrape tests.

It gets a temporary config and storage directory, scrapes the given targets every second and is
stopped on exit. :meth:`PrometheusServer.query` runs an instant PromQL query through the HTTP API.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client import CollectorRegistry

from sandboxd.testing import free_port

BINARY = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
SCRAPE_INTERVAL_SECONDS = 1


class QueryError(Exception):
    """Prometheus refused a query (bad PromQL, unknown function, ...)."""


class PrometheusServer:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant-vector result of ``promql``, each ``{"metric": {...}, "value": [ts, "v"]}``."""
        response = self.http.get("/api/v1/query", params={"query": promql})
        body = response.json()
        if body.get("status") != "success":
            raise QueryError(f"{promql}: {body.get('errorType')}: {body.get('error')}")
        data = body["data"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def value(self, promql: str) -> float | None:
        """The single value of ``promql``, or None when it has no series."""
        result = self.query(promql)
        if not result:
            return None
        assert len(result) == 1, f"{promql} has {len(result)} series: {result}"
        return float(result[0]["value"][1])

    def wait_for_scrape_after(self, job: str, since: float, timeout: float = 30.0) -> None:
        """Block until a successful scrape of ``job`` started after Unix time ``since``.

        ``timestamp(up)`` is when the latest scrape began, so that scrape saw everything done before ``since``.
        """
        deadline = time.monotonic() + timeout
        while True:
            # timestamp() must wrap the bare selector: on any other expression it gives the query time.
            last = self.value(f'timestamp(up{{job="{job}"}})')
            if last is not None and last > since and self.value(f'up{{job="{job}"}}') == 1:
                return
            assert time.monotonic() < deadline, f"Prometheus did not scrape {job} within {timeout}s"
            time.sleep(0.25)


def _config(targets: dict[str, str], rule_files: list[Path]) -> dict[str, Any]:
    return {
        "global": {
            "scrape_interval": f"{SCRAPE_INTERVAL_SECONDS}s",
            "evaluation_interval": f"{SCRAPE_INTERVAL_SECONDS}s",
        },
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]} for job, target in targets.items()
        ],
    }


@contextlib.contextmanager
def running_prometheus(
    workdir: Path, targets: dict[str, str], rule_files: list[Path] | None = None, timeout: float = 60.0
) -> Iterator[PrometheusServer]:
    """Start Prometheus on 127.0.0.1 scraping ``targets`` (job name -> ``host:port``) and yield it."""
    assert BINARY is not None, "the prometheus binary is not installed"
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(_config(targets, rule_files or [])))
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            BINARY,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        stdout=log,
        stderr=log,
    )
    server = PrometheusServer(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.TransportError):
                if server.http.get("/-/ready").status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"prometheus did not start: {(workdir / 'prometheus.log').read_text()[-2000:]}"
                )
            time.sleep(0.2)
        yield server
    finally:
        server.http.close()
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w$.])([a-zA-Z_:][\w:]*)\b(?!\s*\()")
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
}
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}  # series Prometheus adds per target


def metric_names(promql: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords and label names excluded)."""
    text = _STRINGS.sub('""', promql)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPING.sub("", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in _KEYWORDS}


def family_series(name: str, kind: str) -> set[str]:
    """The series names of one metric family of type ``kind``."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "info": ("_info",)}
    return {name + suffix for suffix in suffixes.get(kind, ("",))}


def exposed_names(registry: CollectorRegistry) -> set[str]:
    """Every series name the registry can expose, whether or not a labelled child exists yet."""
    return {series for family in registry.collect() for series in family_series(family.name, family.type)}


def grafana_to_promql(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced, so that Prometheus can run it.

    The rate window is wide (5m) so that a few scrapes that time out on a loaded machine (the 1 s scrape
    interval caps the timeout) cannot empty the result.
    """
    for variable, value in {"$__rate_interval": "5m", "$__interval": "15s", "$__range": "5m"}.items():
        expr = expr.replace(variable, value)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)  # $policy, $instance: all values
