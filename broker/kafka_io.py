"""Thin typed wrappers around confluent-kafka: the pipeline, replay, demo, report and evaluate-stream reach
Kafka only through here and `broker.kafka_views` (topic snapshots and group progress read from outside
the loop); broker.offline.local_kafka, which runs the development broker itself, is the exception.

The delivery guarantee is decided in one place, `KafkaIO.commit`, whose numbered steps follow the usual
order: flush the producer (annotations and dead letters, then the store's changelog records) → raise any
saved delivery error → commit the input offsets (at-least-once) or send them to the transaction and
commit it (exactly-once) → flush local state. A batch's offsets are only
committed after every record of that batch was acknowledged by the brokers.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from broker.config import KafkaConfig
from broker.errors import ConfigError, DeliveryError
from broker.kafka_log import KafkaClientLog

log = logging.getLogger(__name__)

# Dead-letter records keep the original key and bytes; the why travels in headers (as Kafka Connect does).
DLQ_HEADER_REASON = "varstream.error.reason"
DLQ_HEADER_MESSAGE = "varstream.error.message"
DLQ_HEADER_TOPIC = "varstream.source.topic"
DLQ_HEADER_PARTITION = "varstream.source.partition"
DLQ_HEADER_OFFSET = "varstream.source.offset"
DLQ_HEADER_TIMESTAMP = "varstream.source.timestamp"


@dataclass(frozen=True)
class InputMessage:
    """What the pipeline needs of a consumed message (no confluent-kafka types beyond this module)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int  # the message's Kafka timestamp (CreateTime or LogAppendTime)


def check_reachable(config: KafkaConfig) -> None:
    """Fail fast with a clear message when the brokers or the input topics are not there."""
    admin = AdminClient({"bootstrap.servers": config.bootstrap_servers, **_common(config)})
    try:
        metadata = admin.list_topics(timeout=config.connect_timeout_s)
    except KafkaException as exc:
        raise ConfigError(
            f"cannot reach Kafka at kafka.bootstrap_servers = {config.bootstrap_servers!r} "
            f"within {config.connect_timeout_s:g} s: {exc.args[0]}"
        ) from exc
    missing = [t for t in config.input_topics if t not in metadata.topics]
    if missing:
        raise ConfigError(
            f"input topic(s) {missing} do not exist on {config.bootstrap_servers}; "
            f"existing topics: {sorted(t for t in metadata.topics if not t.startswith('__'))}"
        )


def _common(config: KafkaConfig) -> dict:
    return {"client.id": f"varstream-{socket.gethostname()}"}


class KafkaIO:
    """The consumer of alerts and the producer of annotations and dead letters, as one unit of delivery."""

    def __init__(
        self,
        config: KafkaConfig,
        on_lag: Callable[[str, int, int], None] | None = None,
        on_assignment_change: Callable[[list[tuple[str, int]], bool], None] | None = None,
        on_connectivity: Callable[[bool], None] | None = None,
    ) -> None:
        self.config = config
        self.exactly_once = config.delivery == "exactly-once"
        self._on_lag = on_lag
        self._on_assignment_change = on_assignment_change
        self._delivery_errors: list[str] = []
        self._changelog_next: dict[tuple[str, int], int] = {}  # changelog partition -> next offset
        self.client_log = KafkaClientLog(on_connectivity)
        consumer_conf = {
            "bootstrap.servers": config.bootstrap_servers,
            "group.id": config.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            "statistics.interval.ms": 5000,
            "stats_cb": self._stats,
            **self.client_log.client_config(),
            **_common(config),
            **config.consumer_config,
        }
        if self.exactly_once:
            consumer_conf["isolation.level"] = "read_committed"
        producer_conf = {
            "bootstrap.servers": config.bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            **self.client_log.client_config(),
            **_common(config),
            **config.producer_config,
        }
        if self.exactly_once:
            producer_conf["transactional.id"] = (
                config.transactional_id or f"varstream-{config.group_id}-{socket.gethostname()}"
            )
            # A dead instance's open transaction holds its changelog partitions' end back until it times
            # out; the new owner's restore waits for that (Kafka Streams uses 10 s for the same reason).
            producer_conf.setdefault("transaction.timeout.ms", 10_000)
        self.consumer = Consumer(consumer_conf)
        self.producer = Producer(producer_conf)
        if self.exactly_once:
            self.producer.init_transactions(config.connect_timeout_s)
        self.consumer.subscribe(list(config.input_topics), on_assign=self._assigned, on_revoke=self._revoked)
        self._in_transaction = False
        self._held: set[tuple[str, int]] = set()  # assigned partitions whose input waits (store restoring)
        self._to_pause: set[tuple[str, int]] = set()  # held, not yet paused (pause needs the assignment)

    # -- consuming ----------------------------------------------------------------------------------
    def consume_batch(self) -> list[InputMessage]:
        """Up to batch_size messages within batch_timeout_s; non-fatal errors are logged (client retries)."""
        raw: list[Message] = self.consumer.consume(self.config.batch_size, self.config.batch_timeout_s)
        if self._to_pause:  # assigned by now: the callback that held them ran inside this consume()
            self.consumer.pause([TopicPartition(t, p) for t, p in self._to_pause])
            self._to_pause.clear()
        batch = []
        rewind: dict[tuple[str, int], int] = {}
        for msg in raw:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise KafkaException(err)
                log.warning("consumer error (retried by the client): %s", err)
                continue
            self.client_log.mark(True)
            if self._held and (key := (msg.topic(), msg.partition())) in self._held:
                rewind[key] = min(rewind.get(key, msg.offset()), msg.offset())  # fetched before the pause
                continue
            _ts_type, ts = msg.timestamp()
            batch.append(
                InputMessage(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), int(ts))
            )
        for (topic, partition), offset in rewind.items():
            self.consumer.seek(TopicPartition(topic, partition, offset))
        if batch and self.exactly_once and not self._in_transaction:
            self.producer.begin_transaction()
            self._in_transaction = True
        return batch

    def hold(self, partitions: Sequence[tuple[str, int]]) -> None:
        """Read nothing of these assigned partitions until `release` (their stores are being restored)."""
        self._held.update(partitions)
        self._to_pause.update(partitions)

    def release(self, partitions: Sequence[tuple[str, int]]) -> None:
        """Read these partitions again, from the first message not processed."""
        paused = [TopicPartition(t, p) for t, p in partitions if (t, p) in self._held - self._to_pause]
        self._held.difference_update(partitions)
        self._to_pause.difference_update(partitions)
        if paused:
            self.consumer.resume(paused)

    # -- producing ----------------------------------------------------------------------------------
    def produce(self, topic: str, key: str | bytes | None, value: bytes, headers: list | None = None) -> None:
        while True:
            try:
                self.producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=self._delivered
                )
                break
            except BufferError:  # local queue full: serve deliveries, then retry
                self.producer.poll(0.1)
        self.producer.poll(0)

    def produce_changelog(self, topic: str, partition: int, key: str, value: bytes | None) -> None:
        """One object's state (None: a tombstone) to the changelog partition of its input partition."""
        while True:
            try:
                self.producer.produce(
                    topic, value=value, key=key, partition=partition, on_delivery=self._changelog_delivered
                )
                break
            except BufferError:
                self.producer.poll(0.1)
        self.producer.poll(0)

    def changelog_next_offset(self, topic: str, partition: int) -> int | None:
        """One past the highest acknowledged changelog offset of this partition (None: none yet)."""
        return self._changelog_next.get((topic, partition))

    def committed(self, partitions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The group's committed offsets (-1: none)."""
        tps = self.consumer.committed(
            [TopicPartition(t, p) for t, p in partitions], timeout=self.config.connect_timeout_s
        )
        return {(tp.topic, tp.partition): tp.offset if tp.offset >= 0 else -1 for tp in tps}

    def unread_elsewhere(self, assigned: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Input partitions not assigned here whose group-committed offset is short of their end: how many
        messages each still holds (a dead member's partitions wait there until the group reassigns them)."""
        topics = self.consumer.list_topics(timeout=self.config.connect_timeout_s).topics
        others = [
            (t, p) for t in self.config.input_topics if t in topics for p in topics[t].partitions
            if (t, p) not in assigned
        ]  # fmt: skip
        if not others:
            return {}
        unread = {}
        for (t, p), committed in self.committed(others).items():
            low, high = self.consumer.get_watermark_offsets(
                TopicPartition(t, p), timeout=self.config.connect_timeout_s, cached=False
            )
            left = high - max(committed, low)
            if left > 0:
                unread[(t, p)] = left
        return unread

    def rebalance_wait_s(self) -> float:
        """How long the group may take to notice a dead member and hand its partitions on: the session
        timeout, one heartbeat to learn of the rebalance, and the join itself."""
        conf = self.config.consumer_config
        session = float(conf.get("session.timeout.ms", 45_000)) / 1000
        heartbeat = float(conf.get("heartbeat.interval.ms", 3_000)) / 1000
        return session + heartbeat + 5.0

    def dead_letter(self, msg: InputMessage, reason: str, message: str) -> None:
        headers = [
            (DLQ_HEADER_REASON, reason.encode()),
            (DLQ_HEADER_MESSAGE, message.encode("utf-8", "replace")[:4096]),
            (DLQ_HEADER_TOPIC, msg.topic.encode()),
            (DLQ_HEADER_PARTITION, str(msg.partition).encode()),
            (DLQ_HEADER_OFFSET, str(msg.offset).encode()),
            (DLQ_HEADER_TIMESTAMP, str(msg.timestamp_ms).encode()),
        ]
        self.produce(self.config.dead_letter_topic, msg.key, msg.value or b"", headers)

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._delivery_errors.append(f"{msg.topic()}: {err.str()}")

    def _changelog_delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._delivery_errors.append(f"{msg.topic()}: {err.str()}")
            return
        key = (msg.topic(), msg.partition())
        self._changelog_next[key] = max(self._changelog_next.get(key, 0), msg.offset() + 1)

    # -- the one place where delivery guarantees are decided -----------------------------------------
    def commit(
        self,
        batch: Sequence[InputMessage],
        flush_local_state: Callable[[], None],
        write_changelog: Callable[[], None] | None = None,
    ) -> None:
        """Make the batch's outputs durable, then move the input offsets past the batch, then local state."""
        # 1. Wait until every produced record of this batch is acknowledged (or failed). At-least-once:
        #    annotations and dead letters first, the store's changelog records after them, so a crash
        #    in between leaves a changelog that re-runs the batch, never one that marks an undelivered
        #    answer as given. Exactly-once: all of them are in the one open transaction.
        if write_changelog is not None:
            if not self.exactly_once:
                self._flush_or_raise()
            write_changelog()
        # 2. Any failure means the batch is not delivered: do not move the offsets.
        self._flush_or_raise()
        # 3. Commit the input offsets: plain commit, or inside the transaction with the outputs.
        offsets = next_offsets(batch)
        if offsets:
            if self.exactly_once:
                self.producer.send_offsets_to_transaction(
                    offsets, self.consumer.consumer_group_metadata(), self.config.connect_timeout_s
                )
                self.producer.commit_transaction(self.config.connect_timeout_s * 4)
                self._in_transaction = False
            else:
                self.consumer.commit(offsets=offsets, asynchronous=False)
        # 4. Local state follows the offsets. A crash before this point leaves the store one batch behind
        #    the committed offsets; the changelog records flushed in step 1 repair it at the next start.
        flush_local_state()

    def _flush_or_raise(self) -> None:
        remaining = self.producer.flush(self.config.connect_timeout_s * 4)
        if remaining or self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            raise DeliveryError(
                f"{remaining} record(s) undelivered, {len(errors)} failed: {'; '.join(errors[:5])}"
            )

    def abort(self, batch: Sequence[InputMessage]) -> None:
        """Exactly-once only: drop the open transaction and rewind to the batch start, to process it again."""
        if not self.exactly_once or not self._in_transaction:
            raise DeliveryError("abort() is only possible inside an exactly-once transaction")
        self.producer.abort_transaction(self.config.connect_timeout_s)
        self._in_transaction = False
        firsts: dict[tuple[str, int], int] = {}
        for m in batch:
            firsts[(m.topic, m.partition)] = min(m.offset, firsts.get((m.topic, m.partition), m.offset))
        for (topic, partition), offset in firsts.items():
            self.consumer.seek(TopicPartition(topic, partition, offset))

    def close(self) -> None:
        try:
            self.producer.flush(self.config.connect_timeout_s)
        finally:
            self.consumer.close()

    # -- callbacks ----------------------------------------------------------------------------------
    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", [(p.topic, p.partition) for p in partitions])
        if self._on_assignment_change:
            self._on_assignment_change([(p.topic, p.partition) for p in partitions], True)

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Batches are committed before the next consume() call, which is where rebalances run:
        # nothing is in flight here, so revoking loses nothing.
        log.info("revoked %s", [(p.topic, p.partition) for p in partitions])
        gone = {(p.topic, p.partition) for p in partitions}
        self._held.difference_update(gone)  # assigned again, it is held (and paused) afresh
        self._to_pause.difference_update(gone)
        if self._on_assignment_change:
            self._on_assignment_change([(p.topic, p.partition) for p in partitions], False)

    def _stats(self, stats_json: str) -> None:
        stats = json.loads(stats_json)
        self.client_log.stats(stats)
        if not self._on_lag:
            return
        for topic, tstats in stats.get("topics", {}).items():
            for pid, pstats in tstats.get("partitions", {}).items():
                lag = pstats.get("consumer_lag", -1)
                if int(pid) >= 0 and lag >= 0 and pstats.get("fetch_state") not in (None, "none"):
                    self._on_lag(topic, int(pid), int(lag))


def next_offsets(batch: Sequence[InputMessage]) -> list[TopicPartition]:
    """The offsets to commit after a batch: one past the highest offset seen per partition."""
    highest: dict[tuple[str, int], int] = {}
    for m in batch:
        key = (m.topic, m.partition)
        highest[key] = max(m.offset, highest.get(key, -1))
    return [TopicPartition(t, p, o + 1) for (t, p), o in sorted(highest.items())]


class KafkaSink:
    """A Kafka topic, written by one idempotent confluent-kafka Producer (acks=all, keyed by objectId).

    The delivery callback records failures; the next send() or flush() raises DeliveryError naming the
    first one, so a replay never reports success for alerts the brokers did not take.
    """

    def __init__(self, bootstrap_servers: str, topic: str, config: dict | None = None) -> None:
        self.topic = topic
        settings = {
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            "compression.type": "lz4",
            "message.max.bytes": 4 * 1024 * 1024,
            **(config or {}),
        }
        self.producer = Producer(settings)
        self.delivered = 0
        self.failed = 0
        self.first_error: str | None = None

    def _on_delivery(self, err, msg) -> None:
        if err is not None:
            self.failed += 1
            if self.first_error is None:
                self.first_error = f"{err} (key {msg.key()!r})"
        else:
            self.delivered += 1

    def _raise_failures(self) -> None:
        if self.failed:
            raise DeliveryError(
                f"{self.failed} alert(s) not delivered to topic {self.topic!r}; first: {self.first_error}"
            )

    def connect(self, timeout_s: float = 10.0) -> KafkaSink:
        """Fetch the topic's metadata now, so the client is connected before the first alert: a paced
        replay's alerts are stamped (CreateTime) when produced, and without this the first ~0.5 s of them
        carry the client's start-up as end-to-end latency. Raises DeliveryError when the brokers do not
        answer within timeout_s (a clear error instead of alerts queued for a broker that is not there)."""
        try:
            metadata = self.producer.list_topics(self.topic, timeout=timeout_s)
        except KafkaException as exc:
            answer = f"no Kafka broker answered for topic {self.topic!r} in {timeout_s:g} s: {exc}"
            raise DeliveryError(answer) from exc
        error = metadata.topics[self.topic].error if self.topic in metadata.topics else None
        # LEADER_NOT_AVAILABLE: just auto-created, a leader is being elected; sends wait for it
        if error is not None and error.code() != KafkaError.LEADER_NOT_AVAILABLE:
            raise DeliveryError(f"topic {self.topic!r}: {error}")
        return self

    def send(self, key: str, value: bytes) -> None:
        self._raise_failures()
        while True:
            try:
                self.producer.produce(self.topic, value=value, key=key, on_delivery=self._on_delivery)
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                self.producer.poll(0.1)
        self.producer.poll(0)

    def flush(self, timeout_s: float = 60.0) -> None:
        left = self.producer.flush(timeout_s)
        if left:
            raise DeliveryError(f"{left} alert(s) still undelivered to {self.topic!r} after {timeout_s:g} s")
        self._raise_failures()

    def close(self) -> None:
        self.flush()
