"""Restore on assignment: bring newly assigned store partitions up to their changelog's end.

A newly assigned partition with a changelog is held back (KafkaIO.hold: paused, nothing of it processed)
while the consume loop restores its store between batches of the other partitions, a time slice per
loop (`step`), and released once restored. Restoring inside the assignment callback instead would keep
the loop from polling for the whole restore: past the consumer's `max.poll.interval.ms` the instance
would leave its group, and every other partition would wait. A store partition is restored from the
changelog offset its local file has applied, or from the beginning when there is no local file (a new
pod, a deleted volume). A file behind the group's committed input offset (the partition was processed
elsewhere meanwhile, or a crash came between the offset and store commits) catches up the same way,
because the changelog records of a batch are flushed before its offsets are committed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from broker.changelog import ChangelogReset, read_partition
from broker.config import Config
from broker.health import Health
from broker.metrics import Metrics
from broker.store import NO_OFFSET, LightCurveStore

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]
# A restore runs in slices of this long between batches: the other partitions keep flowing, and the loop
# keeps polling (a restore longer than max.poll.interval.ms would otherwise eject the instance).
RESTORE_SLICE_S = 0.5


@dataclass
class _Restore:
    """One partition's restore in progress."""

    committed: int = -1  # the group's committed input offset, read at the first slice
    start: int = -1  # the changelog offset it began from (-1: not begun)
    records: int = 0
    started: float = 0.0


class Restorer:
    """Restores store partitions from their changelog topics, reporting to metrics and readiness."""

    def __init__(
        self,
        store: LightCurveStore,
        changelogs: dict[str, str],
        config: Config,
        metrics: Metrics,
        health: Health,
        beat: Callable[[], None],
    ) -> None:
        self.store = store
        self.changelogs = changelogs  # input topic -> changelog topic (empty: local state only)
        self.config = config
        self.metrics = metrics
        self.health = health
        self._beat = beat
        self._pending: dict[TopicPartition, _Restore] = {}

    @property
    def pending(self) -> list[TopicPartition]:
        """Partitions assigned and not yet restored: hold their input back."""
        return list(self._pending)

    def begin(self, partitions: Sequence[TopicPartition]) -> list[TopicPartition]:
        """Open newly assigned partitions; those with a changelog wait for `step` (returned)."""
        for topic, partition in partitions:
            self.store.open(topic, partition)
        todo = [tp for tp in partitions if tp[0] in self.changelogs]
        for tp in todo:
            self._pending.setdefault(tp, _Restore())
        self._report()
        return todo

    def cancel(self, partitions: Sequence[TopicPartition]) -> None:
        """Revoked before restored: dropped (what was applied stays in the local file for a later restore)."""
        for tp in partitions:
            self._pending.pop(tp, None)
        self._report()

    def step(
        self,
        committed: Callable[[list[TopicPartition]], dict[TopicPartition, int]],
        read_committed: bool,
        budget_s: float,
    ) -> list[TopicPartition]:
        """Restore pending partitions, one after another, for about `budget_s`; the ones finished."""
        deadline = time.monotonic() + budget_s
        finished = []
        for tp, restore in list(self._pending.items()):
            if self._advance(tp, restore, committed, read_committed, deadline):
                del self._pending[tp]
                finished.append(tp)
            self._beat()
            if time.monotonic() > deadline:
                break
        self._report()
        return finished

    def _advance(
        self,
        tp: TopicPartition,
        restore: _Restore,
        committed: Callable[[list[TopicPartition]], dict[TopicPartition, int]],
        read_committed: bool,
        deadline: float,
    ) -> bool:
        topic, partition = tp
        part = self.store.open(topic, partition)
        changelog = self.changelogs[topic]
        if restore.start < 0:  # its first slice
            restore.committed = committed([tp]).get(tp, -1)
            restore.started = time.monotonic()
            restore.start = max(part.changelog_offset, 0)
            if part.input_offset != NO_OFFSET and 0 <= part.input_offset < restore.committed:
                log.warning(
                    "store partition %s[%d] is behind the committed input offset (%d < %d): "
                    "catching up from %s",
                    topic, partition, part.input_offset, restore.committed, changelog,
                )  # fmt: skip
                self.metrics.store_behind.inc()

        def apply(records: list[tuple[str, bytes | None]], next_offset: int) -> None:
            part.apply_changelog(records, next_offset)
            self.metrics.store_restore_records.inc(len(records))
            self._beat()

        def read(start: int) -> tuple[int, bool]:
            return read_partition(
                self.config.kafka.bootstrap_servers, changelog, partition, start, apply,
                read_committed=read_committed, timeout_s=self.config.store.restore_timeout_s,
                deadline=deadline,
            )  # fmt: skip

        try:
            n, done = read(max(part.changelog_offset, 0))
        except ChangelogReset as exc:
            log.warning("%s: the local store partition is discarded and rebuilt from the beginning", exc)
            part.wipe()
            restore.start, restore.records = 0, 0
            n, done = read(0)
        restore.records += n
        if not done:
            return False
        part.set_offsets(input_offset=restore.committed if restore.committed >= 0 else None)
        seconds = time.monotonic() - restore.started
        self.metrics.store_restore_seconds.observe(seconds)
        log.info(
            "store partition %s[%d] restored from %s offset %d: %d records in %.2f s, %d objects",
            topic, partition, changelog, restore.start, restore.records, seconds, part.count(),
        )  # fmt: skip
        return True

    def _report(self) -> None:
        self.metrics.store_restoring_partitions.set(len(self._pending))
        self.health.restoring(len(self._pending))
        self.metrics.store_objects.set(self.store.count())
        self.metrics.store_bytes.set(self.store.size_bytes())
