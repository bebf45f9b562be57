"""The store's changelog topics: naming, creation, and reading one partition back for a restore.

As in Kafka Streams and Quix Streams: one compacted topic per input topic and consumer group, with the
input's partition count; an object's record goes to the partition number of the input partition it came
from, keyed by objectId, so compaction keeps each object's latest state and a tombstone removes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from broker.config import KafkaConfig, StoreConfig
from broker.errors import ConfigError, VarstreamError
from broker.topic_reader import read_to_end

log = logging.getLogger(__name__)

READ_CHUNK = 2000  # records applied (and committed to SQLite) together during a restore


class ChangelogReset(VarstreamError):
    """The changelog ends before the offset the local store has applied: it was deleted and recreated."""


def changelog_topics(kafka: KafkaConfig, store: StoreConfig) -> dict[str, str]:
    """Input topic -> its changelog topic (deterministic; `store.changelog_topic` overrides the default)."""
    topics = list(kafka.input_topics)
    if store.changelog_topic and len(topics) == 1:
        return {topics[0]: store.changelog_topic}
    if len(topics) == 1:
        return {topics[0]: f"{kafka.group_id}-lightcurves-changelog"}
    stem = store.changelog_topic or f"{kafka.group_id}-{{topic}}-lightcurves-changelog"
    if "{topic}" not in stem:
        stem = stem + "-{topic}"
    return {t: stem.format(topic=t) for t in topics}


def ensure_changelog_topics(
    kafka: KafkaConfig, store: StoreConfig, timeout_s: float = 30.0
) -> dict[str, str]:
    """Create missing changelog topics (cleanup.policy=compact, the input's partition count); check others."""
    names = changelog_topics(kafka, store)
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers, "log_level": 4})
    metadata = admin.list_topics(timeout=kafka.connect_timeout_s)
    wanted = {}
    for source, name in names.items():
        n_input = len(metadata.topics[source].partitions)
        existing = metadata.topics.get(name)
        if existing is not None and existing.error is None:
            if len(existing.partitions) != n_input:
                raise ConfigError(
                    f"changelog topic {name!r} has {len(existing.partitions)} partitions but input topic "
                    f"{source!r} has {n_input}: they must match (delete it or set store.changelog_topic)"
                )
            continue
        wanted[name] = NewTopic(
            name,
            num_partitions=n_input,
            replication_factor=store.changelog_replication_factor,
            config={"cleanup.policy": "compact"},
        )
    if wanted:
        for name, future in admin.create_topics(list(wanted.values())).items():
            try:
                future.result()
                log.info(
                    "created changelog topic %s (%d partitions, compacted)", name, wanted[name].num_partitions
                )
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # another instance was first
                    raise ConfigError(f"cannot create changelog topic {name!r}: {exc.args[0]}") from exc
        deadline = time.monotonic() + timeout_s
        while True:  # wait until every partition has a leader, or the first restore would time out
            md = admin.list_topics(timeout=kafka.connect_timeout_s)
            ready = all(
                n in md.topics
                and md.topics[n].partitions
                and all(p.leader >= 0 for p in md.topics[n].partitions.values())
                for n in wanted
            )
            if ready:
                break
            if time.monotonic() > deadline:
                raise ConfigError(f"changelog topics {sorted(wanted)} have no leaders after {timeout_s:g} s")
            time.sleep(0.1)
    return names


def read_partition(
    bootstrap_servers: str,
    topic: str,
    partition: int,
    start_offset: int,
    apply: Callable[[list[tuple[str, bytes | None]], int], None],
    read_committed: bool,
    timeout_s: float,
    deadline: float | None = None,
) -> tuple[int, bool]:
    """Apply the partition's records from `start_offset` up to its end offset at the call: (the count
    read, whether the end was reached). With a `deadline` (time.monotonic()) it returns after the first
    chunk applied past it, unfinished; the next call continues from the applied offset.

    `apply(records, next_offset)` gets chunks of (objectId, value or None) in offset order. A start past
    the end raises ChangelogReset; `timeout_s` without progress raises VarstreamError (e.g. a dead
    producer's open transaction holding the end back longer than its transaction timeout).
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": "varstream-restore",  # never joins or commits: partitions are assigned directly
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
            "log_level": 4,
        }
    )
    n_read = 0
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
        if start_offset > high:
            raise ChangelogReset(f"{topic}[{partition}] ends at {high}, before applied offset {start_offset}")
        start = max(start_offset, low)
        if start >= high:
            return 0, True
        consumer.assign([TopicPartition(topic, partition, start)])
        position = start
        what = f"restoring {topic}[{partition}]"
        for records, positions in read_to_end(
            consumer, topic, {partition: high}, timeout_s, what, READ_CHUNK, 0.1
        ):
            now = positions.get(partition, position)
            if records or now > position:
                position = max(position, now)
                apply([(msg.key().decode(), msg.value()) for msg in records], position)
                n_read += len(records)
            if deadline is not None and time.monotonic() > deadline:
                return n_read, False
    finally:
        consumer.close()
    return n_read, True
