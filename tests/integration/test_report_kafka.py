"""`varstream report --bootstrap B --topic T` reads the annotations back from a real Kafka topic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka import Producer

from broker.cli import main as cli_main
from broker.codecs.annotations import encode_annotation
from broker.offline.report import PLOT_FILES, REPORT_FILE, read_annotations_topic
from tests.unit.test_report import make_run

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


def produce(bootstrap: str, topic: str, payloads: list[tuple[str, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for key, value in payloads:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def test_report_reads_every_partition_of_the_topic(kafka, new_topic, tmp_path: Path) -> None:
    records = make_run(n=120, n_duplicates=3)
    topic = new_topic(partitions=3)
    payloads = [(r["objectId"], encode_annotation(r)) for r in records] + [("junk", b"not avro")]
    produce(kafka.bootstrap_servers, topic, payloads)

    read, undecodable = read_annotations_topic(kafka.bootstrap_servers, topic, timeout_s=60)
    assert undecodable == 1
    assert sorted((r["alertId"], r["annotated_at_ms"]) for r in read) == sorted(
        (r["alertId"], r["annotated_at_ms"]) for r in records
    )

    out = tmp_path / "report"
    argv = ["report", "--bootstrap", kafka.bootstrap_servers, "--topic", topic, "--out", str(out)]
    assert cli_main(argv) == 0
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["n_annotations"] == 123 and report["n_duplicate_annotations"] == 3
    assert report["source"]["undecodable"] == 1
    assert all((out / name).is_file() for name in PLOT_FILES)


def test_an_empty_partition_still_ends_the_read(kafka, new_topic) -> None:
    topic = new_topic(partitions=2)
    record = make_run(n=1, n_duplicates=0)[0]
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    producer.produce(topic, value=encode_annotation(record), partition=0)
    assert producer.flush(30) == 0
    read, undecodable = read_annotations_topic(kafka.bootstrap_servers, topic, timeout_s=30)
    assert [r["alertId"] for r in read] == [record["alertId"]] and undecodable == 0


def test_a_missing_topic_is_named(kafka) -> None:
    from broker.errors import ConfigError

    with pytest.raises(ConfigError, match="no-such-topic"):
        read_annotations_topic(kafka.bootstrap_servers, "no-such-topic", timeout_s=10)


def test_records_of_an_aborted_transaction_are_not_reported(kafka, new_topic) -> None:
    """An exactly-once plugin that crashes mid-batch leaves aborted annotations in the log; they are no
    part of the run, so the report must not count them (read_committed)."""
    topic = new_topic(partitions=1)
    kept, aborted = make_run(n=2, n_duplicates=0)
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "transactional.id": f"t-{topic}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, value=encode_annotation(aborted))
    producer.flush(30)
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, value=encode_annotation(kept))
    producer.commit_transaction(30)

    read, undecodable = read_annotations_topic(kafka.bootstrap_servers, topic, timeout_s=30)
    assert [r["alertId"] for r in read] == [kept["alertId"]] and undecodable == 0
