"""`read_to_end`, the loop of restores and topic snapshots, against a scripted stand-in consumer."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, TopicPartition

from broker.errors import VarstreamError
from broker.topic_reader import read_to_end


class _Msg:
    def __init__(self, partition: int, offset: int, eof: bool = False) -> None:
        self._partition, self._offset, self._eof = partition, offset, eof

    def error(self):
        return KafkaError(KafkaError._PARTITION_EOF) if self._eof else None

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


class _Consumer:
    """consume() returns the scripted batches in turn (then nothing); position() what each batch left."""

    def __init__(self, batches: list[tuple[list[_Msg], dict[int, int]]]) -> None:
        self.batches, self.at = batches, -1

    def consume(self, n: int, timeout: float) -> list[_Msg]:
        self.at += 1
        return self.batches[self.at][0] if self.at < len(self.batches) else []

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        now = self.batches[min(self.at, len(self.batches) - 1)][1]
        return [TopicPartition(tp.topic, tp.partition, now.get(tp.partition, -1001)) for tp in partitions]


def test_records_past_the_end_are_left_out_and_positions_capped_at_it():
    consumer = _Consumer(
        [
            ([_Msg(0, 5), _Msg(0, 6)], {0: 7}),
            # 8 is the end; 9 and 10 were produced after the read began (a marker took offset 7)
            ([_Msg(0, 9), _Msg(0, 10)], {0: 11}),
        ]
    )
    out = list(read_to_end(consumer, "t", {0: 8}, 5.0, "reading t"))
    assert [[m.offset() for m in records] for records, _ in out] == [[5, 6], []]
    assert [positions for _, positions in out] == [{0: 7}, {0: 8}]


def test_a_partition_ends_at_eof_past_its_end_even_before_its_position_says_so():
    consumer = _Consumer([([_Msg(1, 3), _Msg(1, 4, eof=True)], {1: -1001})])
    out = list(read_to_end(consumer, "t", {1: 4}, 5.0, "reading t"))
    assert len(out) == 1 and [m.offset() for m in out[0][0]] == [3]
    assert out[0][1] == {1: 4}  # a restore records the end as applied, not the stale position


def test_no_progress_for_the_timeout_raises_naming_the_read():
    consumer = _Consumer([([_Msg(0, 0)], {0: 1})])  # then nothing more: an open transaction at offset 1
    with pytest.raises(VarstreamError, match=r"restoring c\[0\]: no progress for 0.05 s"):
        for _ in read_to_end(consumer, "c", {0: 3}, 0.05, "restoring c[0]", poll_s=0.0):
            pass
