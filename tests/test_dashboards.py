"""The provisioned Grafana dashboards only chart series that sandboxd exposes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_server import SYNTHETIC, exposed_names, family_series, metric_names

from sandboxd.metrics import Metrics

GRAFANA = Path(__file__).resolve().parent.parent / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))


def targets(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL expression) for every query of every panel."""
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]


def test_the_three_dashboards_are_provisioned() -> None:
    """Overview, pool and watchdog & curriculum exist, with distinct uids, from the provisioned folder."""
    uids = {json.loads(path.read_text())["uid"] for path in DASHBOARDS}
    assert uids == {"sandboxd-overview", "sandboxd-pool", "sandboxd-watchdog"}
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "sandboxd.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/sandboxd"
    source = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert [(entry["type"], entry["uid"]) for entry in source["datasources"]] == [
        ("prometheus", "prometheus")
    ]


@pytest.mark.parametrize("path", DASHBOARDS, ids=[path.stem for path in DASHBOARDS])
def test_every_expression_names_only_exposed_metrics(path: Path) -> None:
    """Each panel query selects only metric names in sandboxd's registry (or Prometheus' own ``up``)."""
    known = exposed_names(Metrics().registry) | SYNTHETIC
    dashboard = json.loads(path.read_text())
    queries = targets(dashboard)
    assert queries
    for title, expr in queries:
        names = metric_names(expr)
        assert names, f"{title}: {expr} selects no metric"
        assert names <= known, f"{title}: unknown metrics {sorted(names - known)}"
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert metric_names(variable["definition"].removeprefix("label_values(").split(",")[0]) <= known


@pytest.mark.parametrize("path", DASHBOARDS, ids=[path.stem for path in DASHBOARDS])
def test_panels_are_well_formed(path: Path) -> None:
    """Panels have unique ids, a title, a query each, and use the dashboard's data-source variable."""
    dashboard = json.loads(path.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert "datasource" in {variable["name"] for variable in dashboard["templating"]["list"]}
    for panel in dashboard["panels"]:
        assert panel["title"]
        assert panel["targets"]
        assert panel["datasource"]["uid"] == "${datasource}"
        assert {target["refId"] for target in panel["targets"]} == {
            chr(ord("A") + index) for index in range(len(panel["targets"]))
        }


def test_name_check_rejects_an_unknown_metric() -> None:
    """The name extraction sees a typo'd metric next to functions, grouping labels and matchers."""
    expr = (
        'sum by (policy) (rate(sandboxd_runz_total{status="ok"}[$__rate_interval])) / on (job) group_left up'
    )
    assert metric_names(expr) == {"sandboxd_runz_total", "up"}
    assert "sandboxd_runz_total" not in exposed_names(Metrics().registry)


def test_every_metric_family_is_charted() -> None:
    """Each family sandboxd exposes appears on at least one dashboard (add a panel with a new family)."""
    charted: set[str] = set()
    for path in DASHBOARDS:
        for _, expr in targets(json.loads(path.read_text())):
            charted |= metric_names(expr)
    for family in Metrics().registry.collect():
        series = family_series(family.name, family.type)
        assert series & charted, f"no dashboard charts {family.name}"
