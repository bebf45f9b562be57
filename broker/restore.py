"""Restore on assignment: bring newly assigned store partitions up to their changelog's end.

Runs inside the consumer's assignment callback, so no input of a partition is read before its store is
restored: from the changelog offset the local file has applied, or from the beginning when there is no
local file (a new pod, a deleted volume). A file behind the group's committed input offset (the partition
was processed elsewhere meanwhile, or a crash came between the offset and store commits) catches up the
same way, because the changelog records of a batch are flushed before its offsets are committed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from broker.changelog import ChangelogReset, read_partition
from broker.config import Config
from broker.health import Health
from broker.metrics import Metrics
from broker.store import NO_OFFSET, LightCurveStore

log = logging.getLogger(__name__)


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

    def restore(
        self, partitions: list[tuple[str, int]], committed: dict[tuple[str, int], int], read_committed: bool
    ) -> None:
        """Open each partition's store and restore those with a changelog (readiness 503 meanwhile)."""
        todo = [tp for tp in partitions if tp[0] in self.changelogs]
        try:
            for n, (topic, partition) in enumerate(todo):
                self.metrics.store_restoring_partitions.set(len(todo) - n)
                self.health.restoring(len(todo) - n)
                self._restore_one(topic, partition, committed.get((topic, partition), -1), read_committed)
                self._beat()
        finally:
            self.metrics.store_restoring_partitions.set(0)
            self.health.restoring(0)
        for topic, partition in partitions:
            self.store.open(topic, partition)  # local-only partitions (no changelog) open here
        self.metrics.store_objects.set(self.store.count())
        self.metrics.store_bytes.set(self.store.size_bytes())

    def _restore_one(self, topic: str, partition: int, committed: int, read_committed: bool) -> None:
        part = self.store.open(topic, partition)
        changelog = self.changelogs[topic]
        if part.input_offset != NO_OFFSET and 0 <= part.input_offset < committed:
            log.warning(
                "store partition %s[%d] is behind the committed input offset (%d < %d): catching up from %s",
                topic, partition, part.input_offset, committed, changelog,
            )  # fmt: skip
            self.metrics.store_behind.inc()
        started = time.monotonic()

        def apply(records: list[tuple[str, bytes | None]], next_offset: int) -> None:
            part.apply_changelog(records, next_offset)
            self.metrics.store_restore_records.inc(len(records))
            self._beat()

        def read(start: int) -> int:
            return read_partition(
                self.config.kafka.bootstrap_servers, changelog, partition, start, apply,
                read_committed=read_committed, timeout_s=self.config.store.restore_timeout_s,
            )  # fmt: skip

        start = max(part.changelog_offset, 0)
        try:
            n = read(start)
        except ChangelogReset as exc:
            log.warning("%s: the local store partition is discarded and rebuilt from the beginning", exc)
            part.wipe()
            start, n = 0, read(0)
        part.set_offsets(input_offset=committed if committed >= 0 else None)
        seconds = time.monotonic() - started
        self.metrics.store_restore_seconds.observe(seconds)
        log.info(
            "store partition %s[%d] restored from %s offset %d: %d records in %.2f s, %d objects",
            topic, partition, changelog, start, n, seconds, part.count(),
        )  # fmt: skip
