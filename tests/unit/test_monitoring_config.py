"""The Prometheus scrape config, alert rules and Grafana dashboard match the metrics we export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from eatcloud.observability.metrics import Metrics
from eatcloud.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# The rules and the dashboard live in the chart; docker-compose mounts them from there.
CHART_FILES = ROOT / "charts/eatcloud/files"
NAME = re.compile(r"\beatcloud_[a-z_]+")


def exported() -> set[str]:
    registry = CollectorRegistry()
    Metrics(registry)
    return set(registry._names_to_collectors)  # every sample name, suffixes included


def test_every_alert_uses_exported_metrics_and_says_what_is_wrong() -> None:
    rules = yaml.safe_load((CHART_FILES / "alerts.yml").read_text())["groups"][0]["rules"]
    names = {rule["alert"] for rule in rules}
    assert {
        "EatCloudConsumerLagGrowing",
        "EatCloudDeadLetters",
        "EatCloudSagaStepsTimingOut",
        "EatCloudOutboxRelayLagging",
    } <= names
    for rule in rules:
        used = set(NAME.findall(rule["expr"]))
        assert used and used <= exported(), (rule["alert"], used - exported())
        assert rule["annotations"]["summary"]


def test_every_dashboard_panel_queries_exported_metrics() -> None:
    dashboard = json.loads((CHART_FILES / "dashboards/eatcloud.json").read_text())
    assert len(dashboard["panels"]) >= 10
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used = set(NAME.findall(target["expr"]))
            assert used and used <= exported(), (panel["title"], used - exported())
            assert target["datasource"]["uid"] == "prometheus"


def test_prometheus_scrapes_the_api_and_worker_ports_the_settings_use() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = {
        t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    }
    settings = Settings()
    assert targets == {f"api:{settings.api.port}", f"worker:{settings.worker.metrics_port}"}
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
