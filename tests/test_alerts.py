"""The Prometheus alert rules and config in deploy/prometheus, checked and unit-tested with promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_server import SYNTHETIC, exposed_names, metric_names

from sandboxd.metrics import Metrics

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool (Debian package prometheus) is not installed"
)
REQUIRED = {
    "SandboxdTripwireFired",
    "SandboxdThrottlePaused",
    "SandboxdViolationSpike",
    "SandboxdPoolExhausted",
    "SandboxdLedgerCheckpointStale",
    "SandboxdHighLatency",
    "SandboxdErrorRate",
}


def _promtool(*args: str, cwd: Path = DEPLOY) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_every_required_alert_exists_with_severity_and_summary() -> None:
    """The issue's alerts are all defined, each with a severity and a summary for the pager."""
    rules = {rule["alert"]: rule for rule in _rules()}
    assert set(rules) >= REQUIRED
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"], name


def test_every_alert_has_a_firing_and_a_silent_test() -> None:
    """alerts.test.yml fires each alert at least once and keeps it silent at least once."""
    cases = yaml.safe_load((DEPLOY / "alerts.test.yml").read_text())["tests"]
    fired: set[str] = set()
    silent: set[str] = set()
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (fired if check["exp_alerts"] else silent).add(check["alertname"])
    names = {rule["alert"] for rule in _rules()}
    assert fired == names
    assert silent == names


def test_every_alert_names_only_exposed_metrics() -> None:
    """Each alert selects only series sandboxd exposes (or Prometheus' ``up``), so no alert is dead on a typo."""
    known = exposed_names(Metrics().registry) | SYNTHETIC
    for rule in _rules():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= known, f"{rule['alert']}: unknown metrics {sorted(names - known)}"


@needs_promtool
def test_promtool_checks_rules_and_config() -> None:
    """promtool accepts alerts.yml and prometheus.yml (which loads the rules)."""
    rules = _promtool("check", "rules", "alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = _promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


@needs_promtool
def test_promtool_rule_unit_tests_pass() -> None:
    """Every case in alerts.test.yml passes under promtool test rules."""
    result = _promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
@pytest.mark.parametrize(
    ("replacement", "broken"),
    [
        pytest.param("vector(0) > 1", "fires", id="never-fires"),
        pytest.param("vector(1)", "stays silent", id="always-fires"),
    ],
)
def test_rule_tests_catch_a_broken_rule(tmp_path: Path, replacement: str, broken: str) -> None:
    """Replacing any one alert's expression by a constant makes promtool's unit tests fail."""
    for rule in _rules():
        groups = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
        for candidate in groups["groups"][0]["rules"]:
            if candidate["alert"] == rule["alert"]:
                candidate["expr"] = replacement
        (tmp_path / "alerts.yml").write_text(yaml.safe_dump(groups))
        shutil.copy(DEPLOY / "alerts.test.yml", tmp_path / "alerts.test.yml")
        result = _promtool("test", "rules", "alerts.test.yml", cwd=tmp_path)
        assert result.returncode != 0, f"{rule['alert']}: no test notices when it never {broken}"
