"""infra/prometheus/: rules pass `promtool check rules` and their own `promtool test rules`
unit tests, every alert is tested firing, and both scrape configs pass `promtool check config`.

promtool is Debian's `prometheus` package (the Makefile's test-only apt list).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
PROM = ROOT / "infra" / "prometheus"
K8S = ROOT / "infra" / "k8s"
PROMTOOL = shutil.which("promtool")

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`: make test installs it)"
)


def promtool(*args: str, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def alerts() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load((PROM / "rules.yml").read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


@needs_promtool
def test_rules_are_valid() -> None:
    result = promtool("check", "rules", "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_rules_pass_their_unit_tests() -> None:
    result = promtool("test", "rules", "rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_a_broken_rule_fails_the_unit_tests(tmp_path: Path) -> None:
    """The unit tests can fail: with the service-down alert's `for` doubled, they do."""
    rules = (PROM / "rules.yml").read_text().replace("== 0\n        for: 1m", "== 0\n        for: 2m", 1)
    assert rules != (PROM / "rules.yml").read_text()
    (tmp_path / "rules.yml").write_text(rules)
    shutil.copy(PROM / "rules_test.yml", tmp_path / "rules_test.yml")
    result = promtool("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert result.returncode != 0 and "ServiceDown" in result.stdout + result.stderr


def test_every_alert_is_tested_firing() -> None:
    """Each alert of rules.yml has a test case where it is expected to fire."""
    tests = yaml.safe_load((PROM / "rules_test.yml").read_text())["tests"]
    firing = {
        case["alertname"] for t in tests for case in t.get("alert_rule_test", []) if case.get("exp_alerts")
    }
    assert set(alerts()) - firing == set()


def test_the_alerts_the_issue_asks_for_are_there() -> None:
    assert {"ServiceDown", "ConsumerLagGrowing", "FinalLatencyHigh", "DeadLettersAppearing",
            "TranslationWorkerDegraded", "RedisMemoryNearLimit", "AuthFailuresSpiking",
            "ErrorRateByCode"} <= set(alerts())


@needs_promtool
@pytest.mark.parametrize("name", ["prometheus.compose.yml", "prometheus.k8s.yml"])
def test_scrape_configs_are_valid(name: str, tmp_path: Path) -> None:
    # Inside the container the rules are mounted at /etc/prometheus/rules.yml; here beside it.
    text = (PROM / name).read_text().replace("/etc/prometheus/rules.yml", str(PROM / "rules.yml"))
    (tmp_path / name).write_text(text)
    result = promtool("check", "config", str(tmp_path / name))
    assert result.returncode == 0, result.stdout + result.stderr


def _k8s_docs() -> list[dict[str, Any]]:
    return [d for p in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]


def test_servicemonitor_selects_the_four_metrics_services_on_their_health_port() -> None:
    [monitor] = list(yaml.safe_load_all((PROM / "servicemonitors.yaml").read_text()))
    assert monitor["kind"] == "ServiceMonitor"
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [d for d in _k8s_docs() if d["kind"] == "Service"
                and selector.items() <= d["metadata"].get("labels", {}).items()]
    assert sorted(s["metadata"]["name"] for s in services) == [
        "gateway-metrics", "stt-worker-metrics", "transcript-store-metrics", "translation-worker-metrics"]
    for service in services:
        assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
        assert service["spec"].get("clusterIP") == "None"  # headless: prometheus.k8s.yml's SRV records


def test_k8s_scrape_config_names_the_metrics_services() -> None:
    config = yaml.safe_load((PROM / "prometheus.k8s.yml").read_text())
    names = {n for job in config["scrape_configs"] for sd in job["dns_sd_configs"] for n in sd["names"]}
    services = {d["metadata"]["name"] for d in _k8s_docs() if d["kind"] == "Service"}
    for name in names:
        service = name.split(".")[2]
        assert service in services, f"{name} names no Service of infra/k8s"


def test_monitoring_override_merges_with_the_stack(compose) -> None:  # type: ignore[no-untyped-def]
    """docker-compose.monitoring.yml adds Prometheus, Loki, Promtail and Grafana to the stack,
    mounting the files this directory tests."""
    from tests.unit.infra.conftest import COMPOSE_REQUIRED_ENV

    result = compose("config", files=("docker-compose.yml", "docker-compose.monitoring.yml"),
                     env=COMPOSE_REQUIRED_ENV)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert {"prometheus", "loki", "promtail", "grafana", "gateway"} <= set(services)
    mounts = [str(v.get("source", v) if isinstance(v, dict) else v) for v in services["prometheus"]["volumes"]]
    assert any("prometheus/rules.yml" in m for m in mounts), mounts
