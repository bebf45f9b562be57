"""A real Prometheus scrapes a live varstream metrics endpoint; every dashboard query and rule answers.

The target is `tests/integration/metrics_driver.py` (broker.metrics driven with realistic values) until the
pipeline can run here: then `varstream_target` starts `varstream run` against the Kafka fixture while a
replay streams through it, and nothing else in this file changes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from tests.fixtures.prometheus import (  # noqa: F401  (prometheus_factory is a fixture)
    REPO,
    PrometheusServer,
    dashboard_queries,
    expand_grafana_variables,
    free_port,
    metric_names,
    prometheus_factory,
    rule_expressions,
)

pytestmark = [pytest.mark.prometheus, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def varstream_target() -> Iterator[str]:
    """host:port of a process exporting varstream's metrics under load."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.metrics_driver", "--port", str(port), "--seconds", "170"],
        cwd=REPO,
    )
    target = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"metrics driver exited with {process.returncode}"
            try:
                exposition = requests.get(f"http://{target}/metrics", timeout=1).text
                if "varstream_alerts_consumed_total" in exposition:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"no metrics at {target} after 30 s"
            time.sleep(0.2)
        yield target
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def scraping_prometheus(prometheus_factory, varstream_target: str) -> Iterator[PrometheusServer]:  # noqa: F811
    """Prometheus once it has scraped the target a few times and evaluated every recording rule."""
    prometheus = prometheus_factory([varstream_target])
    prometheus.wait_for('up{job="varstream"} == 1')
    for rule in rule_expressions():
        if rule.kind == "record":
            prometheus.wait_for(rule.name)
    yield prometheus
    prometheus.stop()


def test_every_dashboard_query_and_rule_answers_with_data(
    scraping_prometheus: PrometheusServer, varstream_target: str
) -> None:
    prometheus = scraping_prometheus
    failures = []
    for query in dashboard_queries():
        expr = expand_grafana_variables(query.expr)
        if not prometheus.query(expr):
            failures.append(f"panel {query.where!r}: no data for {expr}")
    for rule in rule_expressions():
        # query() raises on a PromQL error; alert expressions may rightly be empty (nothing to alert on).
        result = prometheus.query(rule.expr if rule.kind == "alert" else rule.name)
        if rule.kind == "record" and not result:
            failures.append(f"recording rule {rule.name}: no data")
    assert failures == []

    # Prometheus itself evaluated every rule without error.
    for group in prometheus.api("rules")["groups"]:
        for rule in group["rules"]:
            assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"

    # The instance label survives relabelling (a port other than 9108 keeps host:port).
    (up,) = prometheus.query('up{job="varstream"}')
    assert up["metric"]["instance"] == varstream_target


def test_every_metric_the_dashboard_uses_is_scraped(scraping_prometheus: PrometheusServer) -> None:
    scraped = set(scraping_prometheus.api("label/__name__/values"))
    recorded = {rule.name for rule in rule_expressions() if rule.kind == "record"}
    used = set().union(*(metric_names(q.expr) for q in dashboard_queries()))
    assert used - scraped - recorded == set()
    assert recorded <= scraped  # recorded series are stored like scraped ones


def test_dead_letter_alert_fires_and_the_others_stay_quiet(scraping_prometheus: PrometheusServer) -> None:
    prometheus = scraping_prometheus
    (firing,) = prometheus.wait_for('ALERTS{alertname="VarstreamDeadLetters", alertstate="firing"}')
    assert firing["metric"]["reason"] == "schema_invalid"
    assert firing["metric"]["severity"] == "warning"
    assert prometheus.query('ALERTS{alertname!="VarstreamDeadLetters"}') == []


def test_throughput_over_time_comes_back_from_a_range_query(scraping_prometheus: PrometheusServer) -> None:
    time.sleep(3)  # a few more evaluations
    end = time.time()
    (series,) = scraping_prometheus.query_range(
        'sum(instance:varstream_alerts_consumed:rate1m{job="varstream"})', end - 10, end, step=1
    )
    rates = [float(value) for _, value in series["values"]]
    assert len(rates) >= 3
    assert all(rate > 0 for rate in rates)
    # rate() over 1 min divides by the whole minute while the series is younger than that: still rising.
    assert rates[-1] > rates[0]
