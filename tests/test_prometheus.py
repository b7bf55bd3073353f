"""A real Prometheus scrapes a real sandboxd (Docker backend) and sees exactly the known workload."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_server import BINARY, PrometheusServer, QueryError, grafana_to_promql, running_prometheus

from sandboxd import __version__
from sandboxd.settings import BUILTIN_POLICIES, Settings
from sandboxd.testing import running_server

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.skipif(
        BINARY is None, reason="the prometheus binary (Debian package prometheus) is not installed"
    ),
]
ROOT = Path(__file__).resolve().parent.parent
JOB = "sandboxd"
OK_RUNS, TIMEOUTS, BATCH = 3, 2, 5


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """sandboxd (one warm container) after the known workload, and a Prometheus that has scraped it since."""
    policies = tmp_path_factory.mktemp("policies")
    text = (BUILTIN_POLICIES / "default.yaml").read_text()
    (policies / "default.yaml").write_text(re.sub(r"warm_containers: \d+", "warm_containers: 1", text))
    settings = Settings(instance=f"test-prom-{uuid.uuid4().hex[:8]}", policies_dir=policies)
    with running_server(settings) as url:
        target = url.removeprefix("http://")
        rules = [ROOT / "deploy" / "prometheus" / "alerts.yml"]
        with running_prometheus(tmp_path_factory.mktemp("prometheus"), {JOB: target}, rules) as prometheus:
            with httpx.Client(base_url=url, timeout=60) as client:
                for _ in range(OK_RUNS):
                    assert client.post("/v1/runs", json={"code": "print(1)"}).json()["status"] == "ok"
                for _ in range(TIMEOUTS):
                    slow = {"code": "while True: pass", "limits": {"wall_time_seconds": 1}}
                    assert client.post("/v1/runs", json=slow).json()["status"] == "timeout"
                batch = client.post("/v1/runs/batch", json={"runs": [{"code": "pass"}] * BATCH})
                assert [run["status"] for run in batch.json()["results"]] == ["ok"] * BATCH
                assert client.post("/v1/runs", json={"code": "1", "policy": "no-such"}).status_code == 422
                assert client.get("/no/such/path").status_code == 404
            # Two scrapes after the workload: rate() over the dashboards' queries needs two samples.
            for _ in range(2):
                prometheus.wait_for_scrape_after(JOB, since=time.time() + 0.2)
            yield prometheus


def _value(prometheus: PrometheusServer, promql: str) -> float | None:
    return prometheus.value(f'{promql.rstrip("}")}{"," if "{" in promql else "{"}job="{JOB}"}}')


def test_runs_by_status_and_policy(scraped: PrometheusServer) -> None:
    """sandboxd_runs_total counts every run of the workload under its verdict and policy."""
    assert _value(scraped, 'sandboxd_runs_total{status="ok", policy="default"}') == OK_RUNS + BATCH
    assert _value(scraped, 'sandboxd_runs_total{status="timeout", policy="default"}') == TIMEOUTS
    assert scraped.value(f'sum(sandboxd_runs_total{{job="{JOB}"}})') == OK_RUNS + TIMEOUTS + BATCH


def test_histograms_count_requests_runs_and_batch_sizes(scraped: PrometheusServer) -> None:
    """Batch sizes, queue waits and run durations are observed once per request or run, in the right buckets."""
    requests = OK_RUNS + TIMEOUTS + 1
    assert _value(scraped, "sandboxd_batch_size_count") == requests
    assert _value(scraped, "sandboxd_batch_size_sum") == OK_RUNS + TIMEOUTS + BATCH
    assert _value(scraped, 'sandboxd_batch_size_bucket{le="4.0"}') == OK_RUNS + TIMEOUTS
    assert _value(scraped, 'sandboxd_batch_size_bucket{le="8.0"}') == requests
    assert _value(scraped, "sandboxd_queue_wait_seconds_count") == requests
    assert _value(scraped, "sandboxd_run_duration_seconds_count") == OK_RUNS + TIMEOUTS + BATCH
    assert (_value(scraped, "sandboxd_run_duration_seconds_sum") or 0) >= TIMEOUTS * 1.0  # each ran its 1s
    assert _value(scraped, 'sandboxd_run_duration_seconds_bucket{le="+Inf"}') == OK_RUNS + TIMEOUTS + BATCH
    # Timeouts ran for their full second; a loaded machine may slow an ok run too, so this is an upper bound.
    assert (_value(scraped, 'sandboxd_run_duration_seconds_bucket{le="0.5"}') or 0) <= OK_RUNS + BATCH


def test_http_requests_by_route_template_and_code(scraped: PrometheusServer) -> None:
    """Requests are counted by route template and status code, 4xx included, unknown paths as 'unmatched'."""
    assert _value(scraped, 'sandboxd_http_requests_total{route="/v1/runs", code="200"}') == OK_RUNS + TIMEOUTS
    assert _value(scraped, 'sandboxd_http_requests_total{route="/v1/runs/batch", code="200"}') == 1
    assert _value(scraped, 'sandboxd_http_requests_total{route="/v1/runs", code="422"}') == 1
    assert _value(scraped, 'sandboxd_http_requests_total{route="unmatched", code="404"}') == 1
    routes = {series["metric"]["route"] for series in scraped.query("sandboxd_http_requests_total")}
    assert "/no/such/path" not in routes


def test_pool_gauges_return_to_the_warm_target(scraped: PrometheusServer) -> None:
    """After the workload nothing stays leased and the pool refills to its one warm container."""
    deadline = time.monotonic() + 60
    while True:
        warm = _value(scraped, 'sandboxd_pool_containers{policy="default", state="warm"}')
        leased = _value(scraped, 'sandboxd_pool_containers{policy="default", state="leased"}')
        if (warm, leased) == (1, 0):
            break
        assert time.monotonic() < deadline, f"pool did not settle: warm={warm} leased={leased}"
        time.sleep(1)
    assert (_value(scraped, "sandboxd_container_start_seconds_count") or 0) >= 1 + OK_RUNS + TIMEOUTS + 1
    assert scraped.value(f'sum(sandboxd_container_start_failures_total{{job="{JOB}"}}) or vector(0)') == 0


def test_build_info_and_watchdog_gauges_are_scraped(scraped: PrometheusServer) -> None:
    """Build info carries the version; throttle, confidence and checkpoint gauges exist from the start."""
    assert scraped.value(f'sandboxd_build_info{{job="{JOB}", version="{__version__}"}}') == 1
    assert _value(scraped, "up") == 1
    for gauge in (
        "sandboxd_throttle_band",
        "sandboxd_alignment_confidence",
        "sandboxd_ledger_last_checkpoint_timestamp_seconds",
    ):
        assert _value(scraped, gauge) is not None, gauge


def test_every_dashboard_query_runs(scraped: PrometheusServer) -> None:
    """Prometheus accepts every Grafana panel query (variables filled in), and the key panels have data."""
    for path in sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                try:
                    result = scraped.query(grafana_to_promql(target["expr"]))
                except QueryError as exc:
                    pytest.fail(f"{path.name} / {panel['title']}: {exc}")
                if panel["title"] == "Runs by status":
                    assert {series["metric"]["status"] for series in result} == {"ok", "timeout"}


def test_alert_rules_load_and_evaluate(scraped: PrometheusServer) -> None:
    """The shipped alert rules load into a real Prometheus and evaluate without errors."""
    deadline = time.monotonic() + 30
    while True:
        groups = scraped.http.get("/api/v1/rules").json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if rules and all(rule["health"] != "unknown" for rule in rules):
            break
        assert time.monotonic() < deadline, "rules were never evaluated"
        time.sleep(0.5)
    assert {rule["name"] for rule in rules} >= {"SandboxdTripwireFired", "SandboxdErrorRate"}
    assert [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"] == []
