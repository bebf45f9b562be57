"""A real Prometheus scrapes a live varstream metrics endpoint; every dashboard query and rule answers.

Two targets, same checks:
- `metrics-driver`: tests/integration/metrics_driver.py, broker.metrics driven with realistic values (fast);
- `varstream-run`: the real plugin (`python -m broker run --metrics-port P`) consuming a CRTS replay from
  the real local Kafka, plus one message that is no alert (so something is dead-lettered).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from confluent_kafka import Producer

from broker.metrics import DEAD_LETTER_REASONS, POINTS_BINS
from tests.fixtures.prometheus import (
    REPO,
    PrometheusServer,
    dashboard_queries,
    expand_grafana_variables,
    free_port,
    metric_names,
    rule_expressions,
)

pytestmark = [pytest.mark.prometheus, pytest.mark.timeout(600)]
STREAM_RATE = 35.0  # alerts/s: 400 alerts a part, ~12 s each
TARGET_START_S = 60.0  # the real plugin imports torch and loads its models first
FIRST_ANNOTATION_S = 240.0  # period search + inference on a shared 2-core machine


def wait_for_metrics(process: subprocess.Popen, target: str, log: Path | None, timeout_s: float) -> None:
    """Until `target` serves varstream's metrics; fails early (with the log) if the process exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        tail = log.read_text(errors="replace")[-3000:] if log else ""
        assert process.poll() is None, f"target process exited with {process.returncode}\n{tail}"
        try:
            if "varstream_alerts_consumed_total" in requests.get(f"http://{target}/metrics", timeout=1).text:
                return
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, f"no metrics at {target} after {timeout_s} s\n{tail}"
        time.sleep(0.3)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def start_metrics_driver() -> Iterator[str]:
    port = free_port()
    driver = ("-m", "tests.integration.metrics_driver", "--port", str(port), "--seconds", "570")
    process = subprocess.Popen([sys.executable, *driver], cwd=REPO)
    target = f"127.0.0.1:{port}"
    try:
        wait_for_metrics(process, target, None, 30)
        yield target
    finally:
        stop(process)


def start_varstream_run(kafka, shared_data: Path, workdir: Path) -> Iterator[str]:
    """The plugin on a live stream: 12 CRTS objects (<=100 points each) replayed as ZTF alerts at a steady
    rate while Prometheus scrapes, with a junk message now and then for the dead-letter path.

    The stream must outlive the first scrapes: a backlog answered before Prometheus looks would leave every
    counter flat in its eyes (no rate, no increase, no alert).
    """
    from broker.kafka_io import KafkaSink
    from broker.offline.archives.base import open_archive
    from broker.offline.replay import Pace, Selection, replay

    suffix = uuid.uuid4().hex[:8]
    alerts, annotations, dead_letter = (f"scrape-{name}-{suffix}" for name in ("alerts", "out", "dlq"))
    kafka.create_topics([alerts], partitions=2)
    kafka.create_topics([annotations, dead_letter], partitions=1)
    objects = list(open_archive(f"crts:{shared_data / 'crts_kvmu'}"))
    done = threading.Event()

    def stream() -> None:
        sink = KafkaSink(kafka.bootstrap_servers, alerts)
        producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
        try:
            for part in range(3):  # ~12 s of alerts, then a junk message, three times
                selection = Selection(limit=4, seed=part, max_points=100)
                replay(objects, sink, "ztf", Pace.at_rate(STREAM_RATE), selection=selection)
                producer.produce(alerts, key=b"junk", value=b"not an alert")
                producer.flush(30)
                if done.wait(2):
                    return
        finally:
            sink.close()

    port = free_port()
    log = workdir / "varstream-run.log"
    command = [
        *(sys.executable, "-m", "broker", "run", "--bootstrap-servers", kafka.bootstrap_servers),
        *("--input-topic", alerts, "--output-topic", annotations, "--dead-letter-topic", dead_letter),
        *("--group-id", f"scrape-{suffix}", "--store", str(workdir / "store.sqlite")),
        *("--metrics-port", str(port), "--set", "metrics.host=127.0.0.1", "--set", "trigger.min_points=20"),
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    target = f"127.0.0.1:{port}"
    streamer = threading.Thread(target=stream, daemon=True)
    try:
        wait_for_metrics(process, target, log, TARGET_START_S)
        streamer.start()
        yield target
    finally:
        done.set()
        streamer.join(60)
        stop(process)


@pytest.fixture(
    scope="module",
    params=["metrics-driver", pytest.param("varstream-run", marks=[pytest.mark.kafka, pytest.mark.slow])],
)
def varstream_target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """host:port of a process exporting varstream's metrics under load."""
    if request.param == "metrics-driver":
        yield from start_metrics_driver()
    else:
        kafka, shared_data = request.getfixturevalue("kafka"), request.getfixturevalue("shared_data")
        yield from start_varstream_run(kafka, shared_data, tmp_path_factory.mktemp("varstream-run"))


@pytest.fixture(scope="module")
def scraping_prometheus(prometheus_factory, varstream_target: str) -> Iterator[PrometheusServer]:
    """Prometheus once the target has annotated something and every recording rule has a value."""
    prometheus = prometheus_factory([varstream_target])
    prometheus.wait_for('up{job="varstream"} == 1')
    prometheus.wait_for("varstream_alerts_annotated_total > 0", timeout_s=FIRST_ANNOTATION_S, poll_s=2)
    prometheus.wait_for("varstream_alerts_dead_lettered_total > 0", timeout_s=60)
    for rule in rule_expressions():
        if rule.kind == "record":
            prometheus.wait_for(rule.name)
    time.sleep(2)  # a couple more scrapes and evaluations after the first annotation
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


def test_model_info_names_the_model_and_device(scraping_prometheus: PrometheusServer) -> None:
    (info,) = scraping_prometheus.query('varstream_model_info{job="varstream"}')
    assert info["metric"]["classifier_name"] and info["metric"]["classifier_version"]
    assert info["metric"]["device"] in ("cpu", "cuda") or info["metric"]["device"].startswith("cuda:")


def test_dead_letter_alert_fires_and_the_others_stay_quiet(scraping_prometheus: PrometheusServer) -> None:
    prometheus = scraping_prometheus
    firing = prometheus.wait_for('ALERTS{alertname="VarstreamDeadLetters", alertstate="firing"}')
    assert {alert["metric"]["reason"] for alert in firing} <= set(DEAD_LETTER_REASONS)
    assert all(alert["metric"]["severity"] == "warning" for alert in firing)
    # Every other alert needs minutes of trouble (`for:`), and none of these runs is in trouble that long.
    assert prometheus.query('ALERTS{alertname!="VarstreamDeadLetters", alertstate="firing"}') == []


def test_throughput_over_time_comes_back_from_a_range_query(scraping_prometheus: PrometheusServer) -> None:
    end = time.time()
    (series,) = scraping_prometheus.query_range(
        'sum(instance:varstream_alerts_consumed:rate1m{job="varstream"})', end - 10, end, step=1
    )
    rates = [float(value) for _, value in series["values"]]
    assert len(rates) >= 3, series
    assert all(rate >= 0 for rate in rates) and max(rates) > 0


def test_every_annotation_is_counted_by_light_curve_size(scraping_prometheus: PrometheusServer) -> None:
    """The sizes partition the annotations (one scrape: both counters move in the same batch's accounting),
    only POINTS_BINS appear, and novel flags per size never exceed that size's annotations."""
    prometheus = scraping_prometheus
    same = (
        'sum(varstream_annotations_by_points_total{job="varstream"}) > 0'
        ' and sum(varstream_annotations_by_points_total{job="varstream"})'
        ' == sum(varstream_alerts_annotated_total{job="varstream"})'
    )
    prometheus.wait_for(same, timeout_s=60, poll_s=1)
    sizes = prometheus.query('varstream_annotations_by_points_total{job="varstream"}')
    assert {s["metric"]["points"] for s in sizes} <= set(POINTS_BINS)
    assert sum(float(s["value"][1]) > 0 for s in sizes) >= 1
    over = prometheus.query(
        'varstream_novel_annotations_total{job="varstream"}'
        ' > on (job, instance, points) varstream_annotations_by_points_total{job="varstream"}'
    )
    assert over == []
