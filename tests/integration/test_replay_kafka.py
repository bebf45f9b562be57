"""Replay into a real Kafka topic and read it back; evaluate-stream reads a real annotations topic."""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections import defaultdict
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer

from broker.codecs import SchemaResolver, decode, encode_annotation
from broker.offline.archives.base import open_archive
from broker.offline.commands import replay as replay_command
from broker.offline.evaluate_stream import evaluate_stream, read_topic
from broker.offline.local_kafka import LocalKafka
from tests.unit.test_evaluate_stream import TRUTH_CSV, annotation

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

ASASSN = Path(__file__).resolve().parents[1] / "fixtures" / "archives" / "asassn"


def consume_all(kafka: LocalKafka, topic: str, expected: int, timeout_s: float = 60.0) -> list:
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": f"check-{topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages, deadline = [], time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None or msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
            if msg.error() is None:
                messages.append(msg)
        extra = consumer.poll(1.0)  # nothing beyond one message per detection
        assert extra is None or extra.error() is not None
    finally:
        consumer.close()
    return messages


def run_replay_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    replay_command.add_arguments(parser)
    return replay_command.main(parser.parse_args(argv))


@pytest.mark.parametrize("flavour", ["ztf", "lsst"])
def test_replay_into_a_topic_one_keyed_message_per_detection(kafka, new_topic, tmp_path, flavour):
    topic = new_topic(partitions=3)
    objects = list(open_archive(f"asassn:{ASASSN}"))
    n_detections = sum(len(o.lightcurve) for o in objects)
    argv = [f"asassn:{ASASSN}", "--flavour", flavour, "--out", str(tmp_path), "--as-fast-as-possible"]
    assert run_replay_command([*argv, "--bootstrap", kafka.bootstrap_servers, "--topic", topic]) == 0

    summary = json.loads((tmp_path / "replay.json").read_text())
    assert summary["n_alerts"] == n_detections and summary["n_objects"] == len(objects) == 4
    with open(tmp_path / "truth.csv", newline="") as handle:
        truth = {row["objectId"]: row for row in csv.DictReader(handle)}
    resolver = SchemaResolver(folders=[tmp_path / "schemas"]) if flavour == "lsst" else None
    messages = consume_all(kafka, topic, n_detections)
    assert len(messages) == n_detections
    by_key = defaultdict(list)
    partitions_of_key = defaultdict(set)
    for msg in messages:
        alert = decode(msg.value(), flavour, resolver)
        key = msg.key().decode()
        assert key == alert.object_id  # Kafka key = objectId
        by_key[key].append(alert)
        partitions_of_key[key].add(msg.partition())
    assert set(by_key) == set(truth)
    for key, alerts in by_key.items():
        assert len(alerts) == int(truth[key]["n_points"])
        assert [a.mjd for a in alerts] == sorted(a.mjd for a in alerts)  # per-key order survives partitioning
        assert len(partitions_of_key[key]) == 1


def test_evaluate_stream_reads_a_transactional_topic_to_its_end(kafka, new_topic, tmp_path):
    topic = new_topic(partitions=2)
    (tmp_path / "truth.csv").write_text(TRUTH_CSV)
    records = [
        annotation("A", "1", 8.0, "EW", period=0.4, sent=1_000, at=1_250),
        annotation("B", "2", 8.0, "RRab", period=0.55, sent=1_000, at=1_500),
        annotation("B", "2", 8.0, "RRab", period=0.55, sent=1_000, at=1_900),  # redelivered answer
        annotation("C", "3", 8.0, "EW", percentile=90.0, novel=True, sent=1_000, at=2_000),
        annotation("D", "4", 8.0, "RRab", percentile=99.0, novel=True, sent=1_000, at=3_000),
    ]
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "transactional.id": f"t-{topic}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    for record in records:
        producer.produce(topic, key=record["objectId"], value=encode_annotation(record))
    producer.commit_transaction(30)  # leaves a commit marker after the last record of each partition

    # commit_transaction returns before the coordinator has written the markers; until then the last
    # stable offset (the end a read_committed reader sees) lags, so give the markers a moment
    deadline = time.monotonic() + 15
    while len(snapshot := read_topic(kafka.bootstrap_servers, topic, timeout_s=20).records) < 5:
        assert time.monotonic() < deadline, f"only {len(snapshot)} committed annotations visible"
        time.sleep(0.2)
    full = read_topic(kafka.bootstrap_servers, topic, timeout_s=20)
    assert len(full.records) == 5 and sum(full.end_offsets.values()) > 5  # markers take offsets too

    metrics = evaluate_stream(kafka.bootstrap_servers, topic, tmp_path / "truth.csv", tmp_path / "out", 20)
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written["accuracy"] == metrics["accuracy"] == pytest.approx(2 / 3)
    assert written["counts"]["duplicate_annotations"] == 1 and written["counts"]["objects_annotated"] == 4
    assert written["latency_seconds"]["p50"] == pytest.approx(0.9)
    assert written["novelty"]["p95"]["recall"] == 1.0


def test_evaluate_stream_on_a_missing_topic_says_so(kafka, tmp_path):
    (tmp_path / "truth.csv").write_text(TRUTH_CSV)
    from broker.errors import ConfigError

    with pytest.raises(ConfigError, match="topic 'no-such-topic' does not exist"):
        evaluate_stream(kafka.bootstrap_servers, "no-such-topic", tmp_path / "truth.csv", tmp_path / "out", 5)
