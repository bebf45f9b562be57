"""KafkaIO.hold/release on a real broker: a held partition yields nothing, the others flow, and on release
it is read from its first message, none skipped (messages fetched before the pause are read again)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from broker.config import KafkaConfig
from broker.kafka_io import KafkaIO

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

PER_PARTITION = 300


def produce(bootstrap: str, topic: str, partitions: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for p in range(partitions):
        for i in range(PER_PARTITION):
            producer.produce(topic, value=f"{p}:{i}".encode(), partition=p)
    assert producer.flush(30) == 0


def consume_for(kio: KafkaIO, seconds: float, until=None) -> list:
    got, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        got += kio.consume_batch()
        if until is not None and until(got):
            break
    return got


@pytest.mark.parametrize("hold_at", ["assignment", "mid-stream"])
def test_a_held_partition_is_read_from_its_first_unprocessed_message(kafka, new_topic, hold_at) -> None:
    topic = new_topic(partitions=2)
    produce(kafka.bootstrap_servers, topic, 2)
    held = (topic, 1)
    config = KafkaConfig(
        bootstrap_servers=kafka.bootstrap_servers, input_topics=[topic], group_id=f"g-{topic}",
        batch_size=20, batch_timeout_s=0.2,
    )  # fmt: skip
    changes: list = []
    kio = KafkaIO(config, on_assignment_change=lambda parts, assigned: changes.append((parts, assigned)))
    if hold_at == "assignment":  # as the pipeline does: from inside the assignment callback
        kio._on_assignment_change = lambda parts, assigned: kio.hold([held]) if assigned else None
    try:
        first = consume_for(kio, 20, until=lambda got: len(got) >= 40)
        if hold_at == "mid-stream":
            kio.hold([held])
        seen_before_hold = {m.offset for m in first if (m.topic, m.partition) == held}
        rest = consume_for(
            kio, 15, until=lambda got: sum(m.partition == 0 for m in first + got) >= PER_PARTITION
        )
        assert sum(m.partition == 0 for m in first + rest) == PER_PARTITION  # the other partition flows
        assert not [m for m in rest if (m.topic, m.partition) == held], "a held partition yielded messages"
        kio.release([held])
        # from the first message not yet handed over, in order, to the end: nothing skipped
        start = max(seen_before_hold) + 1 if seen_before_hold else 0
        after = consume_for(
            kio, 20, until=lambda got: sum(m.partition == 1 for m in got) >= PER_PARTITION - start
        )
        offsets = [m.offset for m in after if m.partition == 1]
        assert offsets == list(range(start, PER_PARTITION))
        if hold_at == "assignment":
            assert not seen_before_hold
    finally:
        kio.consumer.close()
