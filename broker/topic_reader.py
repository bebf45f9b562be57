"""Read directly assigned partitions up to fixed end offsets: the loop restores and topic snapshots share.

A partition is done when the consumer's position reaches its end offset (positions move past transaction
markers, which take offsets but carry no records) or when it reports EOF at or past that offset. Records
at or past the end (produced after the read began) are left out, and positions are reported capped at
the end, so "applied up to here" never skips a record. No progress for `timeout_s` raises: a dead
producer's open transaction holds the end back until the broker aborts it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from broker.errors import VarstreamError


def read_to_end(
    consumer: Consumer,
    topic: str,
    ends: dict[int, int],
    timeout_s: float,
    what: str,
    batch: int = 500,
    poll_s: float = 0.5,
) -> Iterator[tuple[list[Message], dict[int, int]]]:
    """After each consume call: (records below their partition's end, {partition: position capped at
    its end}), until every partition of `ends` is done. The consumer must already be assigned to them.
    `what` names the read in errors ("restoring store-changelog[3]")."""
    pending = dict(ends)
    positions: dict[int, int] = {}
    last_progress = time.monotonic()
    while pending:
        records, at_end = [], set()
        for msg in consumer.consume(batch, poll_s):
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    raise VarstreamError(f"{what}: {err}")
                if msg.offset() >= pending.get(msg.partition(), 0):  # EOF offset: past any txn marker
                    at_end.add(msg.partition())
                continue
            if msg.offset() < pending.get(msg.partition(), -1):
                records.append(msg)
        # EOF at or past the end: every record below it was delivered, so the partition stands at its end
        reached = [(p, pending[p]) for p in at_end & pending.keys()]
        reached += [
            (tp.partition, min(tp.offset, pending[tp.partition]))
            for tp in consumer.position([TopicPartition(topic, p) for p in pending])
            if tp.offset >= 0
        ]
        moved = False
        for p, offset in reached:
            if offset > positions.get(p, -1):
                positions[p], moved = offset, True
        done = {p for p in pending if positions.get(p, -1) >= pending[p]}
        yield records, dict(positions)
        for p in done:
            del pending[p]
        if records or done or moved:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > timeout_s:
            reached = {p: positions.get(p) for p in pending}
            raise VarstreamError(
                f"{what}: no progress for {timeout_s:g} s; partitions at {reached}, not at their end "
                f"offsets {dict(pending)}"
            )
