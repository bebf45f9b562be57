"""The local Apache Kafka serves what the pipeline needs: groups, rebalances, transactions, a clean stop."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from broker.errors import ConfigError
from broker.offline.kafka_node import find_kafka_libs, port_is_free
from broker.offline.local_kafka import LocalKafka

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def _consumer(kafka: LocalKafka, group: str, **extra: object) -> Consumer:
    config = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    return Consumer({**config, **extra})


def _produce(kafka: LocalKafka, topic: str, records: list[tuple[bytes, bytes]], partitions: int = 1) -> None:
    """Produce (key, value) records, record i to partition i % partitions, and wait until all are acked."""
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "enable.idempotence": True})
    failures: list[KafkaError] = []
    for i, (key, value) in enumerate(records):
        producer.produce(
            topic,
            value,
            key,
            partition=i % partitions,
            on_delivery=lambda err, _msg: err and failures.append(err),
        )
    assert producer.flush(15) == 0, "records still in the producer queue after 15 s"
    assert failures == []


def _consume(consumers: list[Consumer], count: int, timeout: float) -> list[list[Message]]:
    """Poll the consumers in turn until `count` records arrived in all (one list per consumer)."""
    received: list[list[Message]] = [[] for _ in consumers]
    deadline = time.monotonic() + timeout
    while sum(map(len, received)) < count:
        assert time.monotonic() < deadline, (
            f"only {sum(map(len, received))} of {count} records in {timeout} s"
        )
        for got, consumer in zip(received, consumers, strict=True):
            message = consumer.poll(0.1)
            if message is None:
                continue
            assert message.error() is None, message.error()
            got.append(message)
    return received


def _poll_until(consumers: list[Consumer], done: Callable[[], bool], timeout: float) -> float:
    """Poll the consumers (expecting no records) until `done()`; returns the seconds it took."""
    began = time.monotonic()
    while not done():
        assert time.monotonic() - began < timeout, f"condition not met in {timeout} s"
        for consumer in consumers:
            message = consumer.poll(0.1)
            assert message is None, "no records were produced, yet one arrived"
    return time.monotonic() - began


def _read_to_end(kafka: LocalKafka, topic: str, isolation: str) -> list[bytes]:
    """All values of a one-partition topic as a consumer with the given isolation level sees them."""
    reader = _consumer(
        kafka,
        f"reader-{uuid.uuid4().hex[:8]}",
        **{"isolation.level": isolation, "enable.partition.eof": True},
    )
    values: list[bytes] = []
    try:
        reader.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            message = reader.poll(0.2)
            if message is None:
                continue
            if message.error() is not None:
                assert message.error().code() == KafkaError._PARTITION_EOF, message.error()
                return values
            values.append(message.value())
    finally:
        reader.close()
    raise AssertionError(f"never reached the end of {topic} ({isolation}) in 15 s")


def test_records_round_trip_through_a_consumer_group(kafka: LocalKafka, new_topic) -> None:
    topic = new_topic()
    sent = [(f"ZTF-{i % 7}".encode(), f"alert-{i}".encode()) for i in range(200)]
    _produce(kafka, topic, sent)

    consumer = _consumer(kafka, f"round-trip-{uuid.uuid4().hex[:8]}")
    try:
        consumer.subscribe([topic])
        (received,) = _consume([consumer], len(sent), timeout=20)
        consumer.commit(asynchronous=False)
        (committed,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
    finally:
        consumer.close()

    assert [(m.key(), m.value()) for m in received] == sent
    assert committed.offset == len(sent)


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_second_consumer_gets_partitions_after_a_rebalance(
    kafka: LocalKafka, new_topic, protocol: str
) -> None:
    """`classic` is the eager join/sync protocol; `consumer` is KIP-848's broker-driven one (Kafka 4)."""
    topic = new_topic(partitions=4)
    group = f"rebalance-{protocol}-{uuid.uuid4().hex[:8]}"
    first = _consumer(kafka, group, **{"group.protocol": protocol})
    second = _consumer(kafka, group, **{"group.protocol": protocol})
    try:
        first.subscribe([topic])
        _poll_until([first], lambda: len(first.assignment()) == 4, timeout=15)
        second.subscribe([topic])

        def split_between_both() -> bool:
            mine = {p.partition for p in first.assignment()}
            theirs = {p.partition for p in second.assignment()}
            return bool(mine) and bool(theirs) and not mine & theirs and mine | theirs == {0, 1, 2, 3}

        rebalance_seconds = _poll_until([first, second], split_between_both, timeout=15)
        print(f"rebalance ({protocol}) took {rebalance_seconds:.2f} s")
        assert rebalance_seconds < 10

        _produce(kafka, topic, [(b"k", f"v{i}".encode()) for i in range(40)], partitions=4)
        got_first, got_second = _consume([first, second], 40, timeout=15)
        assert got_first and got_second
        assert {m.partition() for m in got_first} <= {p.partition for p in first.assignment()}
        assert {m.partition() for m in got_second} <= {p.partition for p in second.assignment()}
    finally:
        first.close()
        second.close()


def test_transaction_commits_output_and_consumed_offsets_together(kafka: LocalKafka, new_topic) -> None:
    source, sink = new_topic(), new_topic()
    _produce(kafka, source, [(f"ZTF-{i}".encode(), f"alert-{i}".encode()) for i in range(10)])
    consumer = _consumer(kafka, f"txn-{uuid.uuid4().hex[:8]}", **{"isolation.level": "read_committed"})
    producer = Producer(
        {"bootstrap.servers": kafka.bootstrap_servers, "transactional.id": f"txn-{uuid.uuid4().hex[:8]}"}
    )
    try:
        consumer.subscribe([source])
        (inputs,) = _consume([consumer], 10, timeout=20)
        producer.init_transactions(15)

        producer.begin_transaction()
        producer.produce(sink, b"never-visible", b"aborted")
        assert producer.flush(15) == 0  # sent to the broker, so aborting has something to hide
        producer.abort_transaction(15)

        producer.begin_transaction()
        for message in inputs:
            producer.produce(sink, message.value() + b":annotated", message.key())
        positions = consumer.position(consumer.assignment())
        producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 15)
        producer.commit_transaction(15)

        (committed,) = consumer.committed([TopicPartition(source, 0)], timeout=10)
    finally:
        consumer.close()

    assert committed.offset == 10
    annotated = [f"alert-{i}:annotated".encode() for i in range(10)]
    assert _read_to_end(kafka, sink, "read_committed") == annotated
    assert _read_to_end(kafka, sink, "read_uncommitted") == [b"never-visible", *annotated]


def test_broker_stops_cleanly_and_frees_its_ports() -> None:
    with LocalKafka() as broker:
        ports = (broker.port, broker.controller_port)
        workdir = broker.workdir
        assert not any(port_is_free(port) for port in ports)
        print(f"second broker started in {broker.start_seconds:.1f} s")
        stop_began = time.monotonic()
    print(f"stopped in {time.monotonic() - stop_began:.2f} s")

    assert broker.exit_code == 143  # the JVM ran its shutdown hooks on SIGTERM; -9 would mean it was killed
    assert all(port_is_free(port) for port in ports)
    assert workdir is not None and not workdir.exists()
    with pytest.raises(ConfigError, match="not running"):
        _ = broker.bootstrap_servers


def test_missing_jars_say_how_to_fetch_them(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("VARSTREAM_KAFKA_LIBS", str(tmp_path))
    with pytest.raises(ConfigError, match="make kafka"):
        find_kafka_libs()
