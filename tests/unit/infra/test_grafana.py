"""infra/grafana/speech-pipeline.json: every query names only metrics the services export
(collected from their prometheus-client registries) or rules.yml records, and the dashboard
covers sessions, latency, lag, throughput, worker distribution and errors."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "infra" / "grafana" / "speech-pipeline.json"
RULES = ROOT / "infra" / "prometheus" / "rules.yml"
# Every module that defines the services' metrics (importing one registers its metrics).
METRIC_MODULES = ("gateway.metrics", "gateway.router", "stt_worker.metrics", "translation_worker.worker",
                  "common.consumer", "common.health", "common.redis_metrics")
# Prometheus's own series for each target.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "on", "ignoring", "group_left", "group_right",
    "rate", "irate", "increase", "deriv", "histogram_quantile", "and", "or", "unless", "offset", "bool",
    "topk", "bottomk", "abs", "clamp_min", "clamp_max", "delta", "avg_over_time", "max_over_time",
}


def exported_names() -> set[str]:
    for module in METRIC_MODULES:
        importlib.import_module(module)
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_count", "_sum"))
    return names


def recorded_names() -> set[str]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["record"] for g in doc["groups"] for r in g["rules"] if "record" in r}


def metric_names(expr: str) -> set[str]:
    """The series an expression selects: identifiers outside strings, label matchers, ranges
    and grouping clauses, that are not functions or keywords."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        following = text[match.end():].lstrip()[:1]
        if word in PROMQL_WORDS or following == "(":
            continue
        names.add(word)
    return names


def queries(doc: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    return out


def test_metric_names_are_parsed_out_of_promql() -> None:
    assert metric_names('sum by (le) (rate(a_bucket{job="x", le="+Inf"}[5m])) / max(b:rec)') == {"a_bucket", "b:rec"}
    assert metric_names("histogram_quantile(0.95, sum by (le, kind) (rate(c_bucket[5m])))") == {"c_bucket"}


def test_every_query_names_metrics_the_services_export() -> None:
    doc = json.loads(DASHBOARD.read_text())
    known = exported_names() | recorded_names() | PROMETHEUS_SERIES
    found = queries(doc)
    assert len(found) >= 20
    for title, expr in found:
        names = metric_names(expr)
        assert names, f"{title}: {expr} names no metric"
        unknown = names - known
        assert not unknown, f"panel {title!r}: {sorted(unknown)} are not exported by any service"


def test_the_recording_and_alert_rules_name_exported_metrics_too() -> None:
    known = exported_names() | recorded_names() | PROMETHEUS_SERIES
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            unknown = metric_names(rule["expr"]) - known
            assert not unknown, f"{rule.get('alert') or rule.get('record')}: {sorted(unknown)}"


def test_the_dashboard_covers_what_an_operator_needs() -> None:
    doc = json.loads(DASHBOARD.read_text())
    rows = {p["title"] for p in doc["panels"] if p["type"] == "row"}
    assert {"Sessions", "Latency", "Lag", "Throughput", "Worker distribution", "Errors"} <= rows
    assert all(p["datasource"]["uid"] == "${datasource}" for p in doc["panels"] if p["type"] != "row")
