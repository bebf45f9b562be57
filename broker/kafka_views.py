"""Looking at topics and groups from outside the consume loop: the report, the demo and evaluate-stream
read a topic to its end or ask how far a group has read, with short-lived clients of their own.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, ConsumerGroupState, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from broker.errors import ConfigError, DecodeError
from broker.topic_reader import read_to_end


def group_is_consuming(bootstrap_servers: str, group: str, timeout_s: float = 10.0) -> bool:
    """True once consumer group `group` is stable with partitions assigned (its members are polling)."""
    # log_level 4: no "purging unserved events" notice each time a short-lived client is dropped
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 4})
    (future,) = admin.describe_consumer_groups([group], request_timeout=timeout_s).values()
    try:
        description = future.result()
    except KafkaException:  # the group does not exist until its first member joins
        return False
    return description.state == ConsumerGroupState.STABLE and any(
        m.assignment.topic_partitions for m in description.members
    )


def committed_messages(bootstrap_servers: str, group: str, topic: str, timeout_s: float = 10.0) -> int:
    """How many messages of `topic` consumer group `group` has committed, summed over its partitions."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": group, "enable.auto.commit": False}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=timeout_s).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=timeout_s)
        return sum(max(tp.offset, 0) for tp in committed)
    finally:
        consumer.close()


@dataclass
class TopicSnapshot:
    """Decoded records of a topic up to its end offsets, plus what could not be decoded."""

    records: list = field(default_factory=list)
    undecodable: Counter = field(default_factory=Counter)  # DecodeError reason -> count
    end_offsets: dict[int, int] = field(default_factory=dict)  # partition -> end offset read up to


def read_snapshot(
    bootstrap_servers: str,
    topic: str,
    decode: Callable[[bytes], object],
    timeout_s: float = 30.0,
    client: str = "varstream-reader",
) -> TopicSnapshot:
    """Every committed record of `topic` from the start to the end offsets it had when this call began.

    Partitions are assigned directly (no group membership, nothing committed); read_committed, so records
    of aborted exactly-once transactions are not counted. Records `decode` rejects with a DecodeError are
    counted by reason. Done when each partition's position reaches its end offset (positions move past
    transaction markers too); raises VarstreamError when `timeout_s` passes without progress (e.g. an open
    transaction holds the end back), ConfigError when Kafka or the topic is not there.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"{client}-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    snapshot = TopicSnapshot()
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=timeout_s)
        except KafkaException as exc:
            raise ConfigError(f"cannot reach Kafka at {bootstrap_servers!r}: {exc.args[0]}") from exc
        partitions = metadata.topics.get(topic)
        if partitions is None or partitions.error is not None or not partitions.partitions:
            raise ConfigError(f"topic {topic!r} does not exist on {bootstrap_servers}")
        pending = {}
        for p in sorted(partitions.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            snapshot.end_offsets[p] = high
            if high > low:
                pending[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
        for records, _ in read_to_end(consumer, topic, pending, timeout_s, f"reading {topic!r}"):
            for msg in records:
                try:
                    snapshot.records.append(decode(msg.value()))
                except DecodeError as exc:
                    snapshot.undecodable[exc.reason] += 1
    finally:
        consumer.close()
    return snapshot
