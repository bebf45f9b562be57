"""The provisioned Grafana dashboard is valid and asks only for exported metrics, by bounded labels."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from broker.metrics import Metrics
from tests.fixtures.prometheus import (
    DASHBOARD,
    REPO,
    dashboard_panels,
    dashboard_queries,
    label_names,
    metric_names,
    rule_expressions,
)

GRAFANA = REPO / "deploy" / "grafana"
# Labels a query may select or group by: the bounded label sets of broker.metrics plus Prometheus's own.
ALLOWED_LABELS = {
    "job",
    "instance",
    "le",
    "quantile",
    "stage",
    "reason",
    "class_name",
    "topic",
    "partition",
    "kind",
    "points",
}
# varstream_model_info: the keys of broker.runtime.InferenceRuntime.info
ALLOWED_LABELS |= {"classifier_name", "classifier_version", "novelty_name", "novelty_version", "device"}
OBJECT_ID_LIKE = re.compile(r"object_?id|alert_?id|candid|dia_?(object|source)|source_?id", re.IGNORECASE)


def exported_names() -> set[str]:
    """Every sample name a varstream process exports: broker.metrics plus prometheus_client's collectors."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.model_info.info({"classifier_name": "itcn", "classifier_version": "0", "device": "cpu"})
    metrics.consumer_lag.labels(topic="t", partition="0").set(0)
    metrics.annotations_by_class.labels(class_name="RRab").inc()
    metrics.annotations_by_points.labels(points="200+").inc()
    metrics.novel_annotations.labels(points="200+").inc()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    return {sample.name for family in registry.collect() for sample in family.samples}


def recorded_names() -> set[str]:
    return {rule.name for rule in rule_expressions() if rule.kind == "record"}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_dashboard_is_templated_on_datasource_and_instance(dashboard: dict) -> None:
    assert dashboard["uid"] == "varstream"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    instance = variables["instance"]
    assert instance["type"] == "query"
    assert instance["datasource"]["uid"] == "${datasource}"
    assert instance["includeAll"] and instance["multi"] and instance["allValue"] == ".*"


def test_every_panel_has_a_query_on_the_selected_datasource_and_instances() -> None:
    panels = dashboard_panels()
    assert len(panels) >= 15
    for panel in panels:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert 'instance=~"$instance"' in target["expr"], f"{panel['title']}: not filtered by $instance"


def test_panel_ids_are_unique_and_panels_do_not_overlap(dashboard: dict) -> None:
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_the_issue_s_panels_are_there() -> None:
    """Throughput, latency (end to end and per stage), batches, lag, skips, dead letters, classes, novelty,
    model/device, CPU and memory: each one is asked for by some query."""
    used = set().union(*(metric_names(q.expr) for q in dashboard_queries()))
    wanted = {
        "instance:varstream_alerts_consumed:rate1m",
        "instance:varstream_alerts_annotated:rate1m",
        "instance:varstream_end_to_end_latency_seconds:quantile_rate5m",
        "instance_stage:varstream_stage_latency_seconds:mean_rate5m",
        "varstream_batch_alerts_bucket",
        "varstream_inference_batch_windows_bucket",
        "varstream_consumer_lag_messages",
        "instance_reason:varstream_alerts_skipped:rate1m",
        "instance_reason:varstream_alerts_dead_lettered:rate1m",
        "instance_class_name:varstream_annotations_by_class:rate5m",
        "instance:varstream_novel_annotations:ratio_rate5m",
        "instance_points:varstream_novel_annotations:rate15m",
        "varstream_model_info",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    }
    assert wanted - used == set()


def test_every_metric_the_dashboard_and_rules_use_is_exported_or_recorded() -> None:
    known = exported_names() | recorded_names() | {"up"}
    expressions = [(q.where, q.expr) for q in dashboard_queries()]
    expressions += [(rule.name, rule.expr) for rule in rule_expressions()]
    for where, expr in expressions:
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        assert names <= known, f"{where}: unknown metric(s) {sorted(names - known)} in {expr!r}"


def test_metric_name_parser_sees_through_promql() -> None:
    expr = (
        'sum by (job, instance) (rate(varstream_alerts_consumed_total{instance=~"a|b"}[5m])) / on (job) '
        'group_left max(instance:foo:rate1m offset 5m) > bool 0.5 and absent(up{job="x"})'
    )
    assert metric_names(expr) == {"varstream_alerts_consumed_total", "instance:foo:rate1m", "up"}
    assert label_names(expr) == {"job", "instance"}


def test_no_query_uses_an_object_id_like_label() -> None:
    expressions = [(q.where, q.expr, q.legend) for q in dashboard_queries()]
    expressions += [(rule.name, rule.expr, "") for rule in rule_expressions()]
    for where, expr, legend in expressions:
        labels = label_names(expr) | set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
        assert labels <= ALLOWED_LABELS, f"{where}: unexpected label(s) {sorted(labels - ALLOWED_LABELS)}"
        assert not OBJECT_ID_LIKE.search(expr + legend), f"{where}: object-id-like label in {expr!r}"


def test_provisioning_points_at_the_dashboard_and_a_prometheus_datasource() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "varstream.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/varstream"
