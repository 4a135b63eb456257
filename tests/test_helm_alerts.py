"""The chart's alerting rules: valid for Prometheus (`promtool check rules`) and doing what they say
(`promtool test rules` with tests/helm/alerts*.test.yaml), on the PrometheusRule as the chart renders it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.helm.support import HELM_TESTS, PROJECT_ROOT, alert_rules, run, tool, values_sets

TEST_FILES = sorted(HELM_TESTS.glob("alerts*.test.yaml"))


def write_rules(directory: Path, values_set: str = "default") -> Path:
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump(alert_rules(values_set), sort_keys=False))
    return path


@pytest.mark.parametrize("values_set", list(values_sets()))
def test_promtool_check_rules(values_set: str, tmp_path: Path) -> None:
    output = run(tool("promtool"), "check", "rules", str(write_rules(tmp_path, values_set)))
    assert "SUCCESS" in output


def test_promtool_unit_tests(tmp_path: Path) -> None:
    write_rules(tmp_path)
    for test_file in TEST_FILES:
        shutil.copy(test_file, tmp_path / test_file.name)
    output = run(tool("promtool"), "test", "rules", *(test_file.name for test_file in TEST_FILES),
                 cwd=tmp_path)
    assert "FAILED" not in output


def test_every_alert_has_a_unit_test() -> None:
    alerts = {rule["alert"] for group in alert_rules()["groups"] for rule in group["rules"]}
    assert {"FaceauthAuthHigh5xxRatio", "FaceauthLoginLatencySLOFastBurn", "FaceauthLoginLatencySLOSlowBurn",
            "FaceauthEmbedderQueueSaturated", "FaceauthMatchDistanceShift", "FaceauthAuthShedding"} <= alerts
    tested = {case["alertname"] for test_file in TEST_FILES for group in yaml.safe_load(test_file.read_text())["tests"]
              for case in group.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert alerts <= tested, f"alerts never shown firing in a promtool test: {sorted(alerts - tested)}"


def test_login_latency_threshold_is_a_histogram_bucket() -> None:
    """The SLO counts requests under a bucket bound; a threshold between bounds would match no series."""
    metrics_py = (PROJECT_ROOT / "services" / "auth" / "faceauth_auth" / "metrics.py").read_text()
    buckets = re.search(r"^LATENCY_BUCKETS = \(([^)]*)\)", metrics_py, re.M)
    assert buckets, "LATENCY_BUCKETS not found in faceauth_auth/metrics.py"
    threshold = yaml.safe_load((PROJECT_ROOT / "deploy/helm/faceauth/values.yaml").read_text())[
        "metrics"]["prometheusRule"]["loginLatency"]["thresholdSeconds"]
    assert float(threshold) in {float(b) for b in buckets.group(1).split(",") if b.strip()}


def test_additional_rules_are_appended() -> None:
    rules = alert_rules("everything-enabled")["groups"][0]["rules"]
    assert rules[-1]["alert"] == "FaceauthNoLogins"
