"""The streaming loop: consume a batch → decode → store → trigger → classify → produce → commit.

Every consumed message ends in exactly one outcome — annotated, skipped (with a counted reason) or
dead-lettered (with the reason and the original bytes) — so alerts in = annotated + skipped + dead-lettered.
Alerts are handled one by one in offset order up to the classification step (so the decision for an alert
does not depend on where batch boundaries fall); the expensive work (period search, inference) is batched.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from broker.alerts import Alert
from broker.annotation import build_annotation
from broker.changelog import ensure_changelog_topics
from broker.classify import Snapshot, classify_snapshots, timed, warm_up
from broker.codecs import SchemaResolver, decode, encode_annotation
from broker.config import Config
from broker.errors import DecodeError, UnusableAlert
from broker.health import Health
from broker.history import HistoryPolicy
from broker.idle_exit import IdleExit
from broker.kafka_io import InputMessage, KafkaIO, check_reachable, next_offsets
from broker.metrics import POINTS_BINS, Metrics, points_bin
from broker.outcomes import Annotated, DeadLettered, Outcome, Skipped
from broker.restore import RESTORE_SLICE_S, Restorer
from broker.runtime import InferenceRuntime
from broker.store import LightCurveStore, PartitionTransaction
from broker.trigger import decide

log = logging.getLogger(__name__)

LATENCY_RESERVOIR = 1_000_000  # end-to-end latencies kept for the run summary
# Fault injection for tests: exit abruptly on the N-th batch after its offsets are committed and before
# the store is (the crash window the changelog repairs).
FAULT_ENV = "VARSTREAM_FAULT_CRASH_BEFORE_STORE_COMMIT"
FAULT_EXIT_CODE = 75
CEILING_MODE = "ceiling_mode"  # skip reason of every decoded alert when run.mode = "ceiling"


@dataclass
class RunSummary:
    """What a run did; written as JSON at exit (run.summary_path) and used by `varstream demo`."""

    alerts_in: int = 0
    annotated: int = 0
    skipped: Counter = field(default_factory=Counter)
    dead_lettered: Counter = field(default_factory=Counter)
    history: Counter = field(default_factory=Counter)  # lazy decoding: "read:<reason>" / "skipped:known"
    classes: Counter = field(default_factory=Counter)
    novel: int = 0
    batches: int = 0
    first_message_at: float | None = None
    last_commit_at: float | None = None
    latencies_s: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        busy = (self.last_commit_at or 0) - (self.first_message_at or 0)
        return {
            "alerts_in": self.alerts_in,
            "annotated": self.annotated,
            "skipped": dict(sorted(self.skipped.items())),
            "dead_lettered": sum(self.dead_lettered.values()),
            "dead_lettered_by_reason": dict(sorted(self.dead_lettered.items())),
            "history_decisions": dict(sorted(self.history.items())),
            "classes": dict(sorted(self.classes.items())),
            "novel": self.novel,
            "batches": self.batches,
            "busy_seconds": busy if busy > 0 else 0.0,
            "throughput_alerts_per_s": self.alerts_in / busy if busy > 0 else 0.0,
            "accounting_holds": self.alerts_in
            == self.annotated + sum(self.skipped.values()) + sum(self.dead_lettered.values()),
        }


@dataclass
class _Pending:
    """An alert on its way through the batch."""

    msg: InputMessage
    alert: Alert | None = None
    snapshot: Snapshot | None = None
    outcome: Outcome | None = None


class Pipeline:
    """One consumer-group member: owns the Kafka clients, the store and the models."""

    def __init__(
        self,
        config: Config,
        metrics: Metrics,
        runtime: InferenceRuntime | None = None,
        health: Health | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.health = health or Health(config.metrics.stall_after_s)
        check_reachable(config.kafka)  # before loading models: a wrong address should fail in seconds
        self.runtime = runtime or InferenceRuntime(config.inference)
        self.store = LightCurveStore(config.store)
        # input topic -> its compacted changelog topic (empty: store.changelog = false, local state only)
        self.changelogs = (
            ensure_changelog_topics(config.kafka, config.store) if config.store.changelog else {}
        )
        self._txns: dict[tuple[str, int], PartitionTransaction] = {}
        self.restorer = Restorer(self.store, self.changelogs, config, metrics, self.health, self._beat)
        self._io: KafkaIO | None = None
        fault = os.environ.get(FAULT_ENV, "")
        self._crash_at_batch = int(fault) if fault.strip() else 0
        self.resolver = SchemaResolver(
            registry_url=config.kafka.schema_registry_url or None,
            folders=[Path(d) for d in config.kafka.schema_dirs],
        )
        # lazy decoding: one history policy per store partition, living and dying with its state
        self._policies: dict[tuple[str, int], HistoryPolicy] = {}
        self.summary = RunSummary()
        self._stop = False
        self._assigned: set[tuple[str, int]] = set()
        self._assigned_at = 0.0  # monotonic time of the latest assignment (restarts the idle-exit clock)
        self._timer = timed(self._stage_done)
        metrics.model_info.info(self.runtime.info)
        for name in self.runtime.class_names:
            metrics.annotations_by_class.labels(class_name=name)
        for points in POINTS_BINS:  # every size exported from the start, at 0
            metrics.annotations_by_points.labels(points=points)
            metrics.novel_annotations.labels(points=points)

    def request_stop(self) -> None:
        """Finish the batch in hand, deliver, commit, then return from run()."""
        self._stop = True
        self.health.stopping()

    def run(self) -> RunSummary:
        if self.config.run.mode != "ceiling":  # before joining the group: the first batch pays no start-up
            seconds, annotated = warm_up(self.runtime, **self._period_engine())
            log.info("science step warmed up in %.2f s (%d of 2 curves annotated)", seconds, annotated)
        io = KafkaIO(
            self.config.kafka,
            on_lag=self._lag,
            on_assignment_change=self._assignment_changed,
            on_connectivity=lambda up: self.metrics.kafka_broker_up.set(1 if up else 0),
        )
        self._io = io
        idle_exit = IdleExit(self.config.run.idle_exit_s)
        self.health.running()
        try:
            while not self._stop:
                started = time.perf_counter()
                batch = io.consume_batch()
                self._beat()
                if self.restorer.pending:  # a slice of restoring between batches of the other partitions
                    io.release(self.restorer.step(io.committed, io.exactly_once, RESTORE_SLICE_S))
                    idle_exit.busy()
                if batch:  # idle polls would drown the stage's real cost
                    self.metrics.stage_latency.labels(stage="consume").observe(time.perf_counter() - started)
                else:
                    if idle_exit.due(io, self._assigned, self._assigned_at):
                        break
                    continue
                idle_exit.busy()
                self.process(batch, io)
                limit = self.config.run.max_alerts
                if limit and self.summary.alerts_in >= limit:
                    break
        finally:
            self.health.stopping()
            io.close()
            self.store.close()
            self.write_summary()
        return self.summary

    # -- one batch ----------------------------------------------------------------------------------
    def process(self, batch: list[InputMessage], io: KafkaIO) -> None:
        if self.summary.first_message_at is None:
            self.summary.first_message_at = time.time()
        self.metrics.batch_size.observe(len(batch))
        pending = [_Pending(m) for m in batch]
        with self._timer("decode"):
            for p in pending:
                self._decode(p, io)
        if self.config.run.mode == "ceiling":  # the bench's upper bound: no store, no science
            for p in pending:
                if p.alert is not None:
                    p.outcome = Skipped(CEILING_MODE)
        else:
            with self._timer("store"):
                for p in pending:
                    if p.alert is not None:
                        self._store_and_trigger(p)
                self._store_history_states()
            self._classify([p for p in pending if p.snapshot is not None], io)
        with self._timer("produce"):
            annotated = [p for p in pending if isinstance(p.outcome, Annotated)]
            for p in annotated:
                record = build_annotation(
                    p.alert, p.snapshot.lightcurve, p.outcome, self.runtime, p.msg.timestamp_ms
                )
                io.produce(self.config.kafka.output_topic, p.alert.object_id, encode_annotation(record))
        with self._timer("commit"):
            try:
                io.commit(batch, lambda: self._flush_store(batch), lambda: self._produce_changelog(io))
            except BaseException:
                for txn in self._txns.values():
                    txn.rollback()
                self._forget_policies({(m.topic, m.partition) for m in batch})
                raise
            finally:
                self._txns.clear()
            for policy in self._policies.values():
                policy.batch_committed()
        self._account(pending, annotated)

    def _decode(self, p: _Pending, io: KafkaIO) -> None:
        try:
            if p.msg.value is None:
                raise DecodeError("undecodable", "message has no value (tombstone)")
            policy = self._policy(p.msg.topic, p.msg.partition)
            try:
                p.alert = decode(p.msg.value, self.config.kafka.input_format, self.resolver, policy)
            except Exception:
                if policy is not None:
                    policy.undo()  # the history it asked for never reached the store
                raise
        except UnusableAlert as exc:  # a valid alert with nothing usable: skipped, not dead-lettered
            p.outcome = Skipped(exc.reason)
            self._count_dropped(exc.dropped)
            return
        except DecodeError as exc:
            self._dead_letter(p, io, exc.reason, str(exc))
            return
        except Exception as exc:  # a decoder bug must not stop the stream: the message is kept in the DLQ
            log.exception("unexpected error decoding %s[%d]@%d", p.msg.topic, p.msg.partition, p.msg.offset)
            self._dead_letter(p, io, "internal", f"{type(exc).__name__}: {exc}")
            return
        self._count_dropped(p.alert.dropped)
        if p.alert.history != "full":  # lazy decoding: count what it decided and why
            reason = policy.last_reason or "trigger_unusable"  # None: the trigger could not stand alone
            self.metrics.history_decisions.labels(decision=p.alert.history, reason=reason).inc()
            self.summary.history[f"{p.alert.history}:{reason}"] += 1

    def _policy(self, topic: str, partition: int) -> HistoryPolicy | None:
        """The lazy-history policy of an input partition (None: decode.history = "full").

        It asks the partition's committed state (`StorePartition.history_state`), which is what a batch's
        decode, done before that batch merges anything, can rely on."""
        if self.config.decode.history != "lazy":
            return None
        key = (topic, partition)
        if key not in self._policies:
            if self.config.run.mode == "ceiling":  # no store: decode as a warm plugin would (known objects)
                lookup = lambda _object_id: (None, None)  # noqa: E731
            else:
                lookup = self.store.open(topic, partition).history_state
            self._policies[key] = HistoryPolicy(lookup, self.config.decode.reconcile_every)
        self._policies[key].last_reason = None
        return self._policies[key]

    def _period_engine(self) -> dict:
        """The operator's `[period]` engine and thread count, as classify_snapshots / warm_up take them."""
        period = self.config.period
        return {"period_engine": period.engine, "period_threads": period.thread_count()}

    def _store_history_states(self) -> None:
        """Each merged object keeps its policy state (after this batch's alerts) in the store and the
        changelog, so a restart or a partition move continues its reconcile schedule. Without a policy
        (decode.history = "full") it is unknown: a later lazy run reads each history once."""
        for key, txn in self._txns.items():
            policy = self._policies.get(key)
            for object_id in txn.merged:
                txn.set_history(object_id, policy.tracked(object_id) if policy else None)

    def _forget_policies(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Drop what the policies of these partitions tracked: their state was restored, revoked or rolled
        back, so the policy state stored with each object (committed, like the offsets) counts again."""
        for key in partitions:
            self._policies.pop(key, None)

    def _count_dropped(self, dropped: dict[str, int]) -> None:
        for reason, n in dropped.items():
            self.metrics.points_dropped.labels(reason=reason).inc(n)

    def _txn(self, topic: str, partition: int) -> PartitionTransaction:
        """This batch's transaction on the store partition of an input partition."""
        key = (topic, partition)
        if key not in self._txns:
            self._txns[key] = self.store.open(topic, partition).begin()
        return self._txns[key]

    def _store_and_trigger(self, p: _Pending) -> None:
        alert = p.alert
        txn = self._txn(p.msg.topic, p.msg.partition)
        state = txn.merge(alert.object_id, alert.lightcurve)
        decision = decide(state, alert.mjd, self.config.trigger)
        if not decision.classify:
            p.outcome = Skipped(decision.reason)
            return
        p.snapshot = Snapshot(alert.object_id, txn.lightcurve(alert.object_id))
        txn.mark_classified(alert.object_id, state.n_points, alert.mjd)

    def _classify(self, todo: list[_Pending], io: KafkaIO) -> None:
        if not todo:
            return
        fap = self.config.trigger.max_false_alarm_probability
        engine = self._period_engine()
        try:
            outcomes = classify_snapshots(
                [p.snapshot for p in todo], self.runtime, fap, self._timer, **engine
            )
        except Exception:
            # Find the object that breaks the batch; the others are answered, it goes to the DLQ.
            log.exception("batch classification failed; retrying object by object")
            outcomes = []
            for p in todo:
                try:
                    outcomes.extend(
                        classify_snapshots([p.snapshot], self.runtime, fap, self._timer, **engine)
                    )
                except Exception as exc:
                    log.exception("classification of %s failed", p.alert.object_id)
                    self._dead_letter(
                        p, io, "internal", f"classification failed: {type(exc).__name__}: {exc}"
                    )
                    outcomes.append(None)
        for p, outcome in zip(todo, outcomes, strict=True):
            if outcome is not None:
                p.outcome = outcome
        windows = sum(p.outcome.classification.windows_used for p in todo if isinstance(p.outcome, Annotated))
        if windows:
            self.metrics.inference_batch_size.observe(windows)

    def _stage_done(self, stage: str, seconds: float) -> None:
        self.metrics.stage_latency.labels(stage=stage).observe(seconds)
        self._beat()  # a long batch is still progress

    def _beat(self) -> None:
        self.health.beat()
        self.metrics.loop_heartbeat.set_to_current_time()

    def _dead_letter(self, p: _Pending, io: KafkaIO, reason: str, message: str) -> None:
        io.dead_letter(p.msg, reason, message)
        p.outcome = DeadLettered(reason, message)

    def _produce_changelog(self, io: KafkaIO) -> None:
        """Write each partition's batch into SQLite (uncommitted), apply the bounds, and send the changed
        objects' states and the evicted objects' tombstones to the changelog (before the commit's flush)."""
        evicted = 0
        for (topic, partition), txn in self._txns.items():
            records = txn.prepare()
            evicted += len(txn.evicted)
            changelog = self.changelogs.get(topic)
            if changelog is None:
                continue
            for object_id, value in records:
                io.produce_changelog(changelog, partition, object_id, value)
                self.metrics.changelog_records.labels(
                    kind="state" if value is not None else "tombstone"
                ).inc()
                if value is not None:
                    self.metrics.changelog_bytes.inc(len(value))
        if evicted:
            log.info("evicted %d objects from the store", evicted)

    def _flush_store(self, batch: list[InputMessage]) -> None:
        """Step 4 of the commit (timed with it): each store partition commits with the offsets it reflects."""
        if self._crash_at_batch and self.summary.batches + 1 == self._crash_at_batch:
            log.error("%s: exiting between the offset commit and the store commit", FAULT_ENV)
            logging.shutdown()
            os._exit(FAULT_EXIT_CODE)
        for tp in next_offsets(batch):
            txn = self._txn(tp.topic, tp.partition)  # also partitions without stored alerts this batch
            changelog = self.changelogs.get(tp.topic)
            applied = (
                self._io.changelog_next_offset(changelog, tp.partition) if changelog and self._io else None
            )
            txn.commit(input_offset=tp.offset, changelog_offset=applied)

    # -- bookkeeping --------------------------------------------------------------------------------
    def _account(self, pending: list[_Pending], annotated: list[_Pending]) -> None:
        now = time.time()
        s, m = self.summary, self.metrics
        s.batches += 1
        s.last_commit_at = now
        s.alerts_in += len(pending)
        m.alerts_consumed.inc(len(pending))
        for p in pending:
            match p.outcome:
                case Annotated():
                    pass  # counted below, with its latency and class
                case Skipped(reason=reason):
                    s.skipped[reason] += 1
                    m.alerts_skipped.labels(reason=reason).inc()
                case DeadLettered(reason=reason):
                    s.dead_lettered[reason] += 1
                    m.alerts_dead_lettered.labels(reason=reason).inc()
                case _:  # cannot happen: every path above sets an outcome; counted, never lost
                    log.error("alert at %s[%d]@%d got no outcome", p.msg.topic, p.msg.partition, p.msg.offset)
                    s.dead_lettered["internal"] += 1
                    m.alerts_dead_lettered.labels(reason="internal").inc()
        names = self.runtime.class_names
        for p in annotated:
            c = p.outcome.classification
            latency = max(0.0, now - p.msg.timestamp_ms / 1000.0)
            m.end_to_end_latency.observe(latency)
            if len(s.latencies_s) < LATENCY_RESERVOIR:
                s.latencies_s.append(latency)
            cls = names[c.predicted_index]
            s.classes[cls] += 1
            m.annotations_by_class.labels(class_name=cls).inc()
            points = points_bin(len(p.snapshot.lightcurve))
            m.annotations_by_points.labels(points=points).inc()
            if c.is_novel:
                s.novel += 1
                m.novel_annotations.labels(points=points).inc()
        s.annotated += len(annotated)
        m.alerts_annotated.inc(len(annotated))
        if annotated:
            m.last_annotation_timestamp.set(now)
        m.store_objects.set(self.store.count())
        m.store_bytes.set(self.store.size_bytes())

    def _lag(self, topic: str, partition: int, lag: int) -> None:
        self.metrics.consumer_lag.labels(topic=topic, partition=str(partition)).set(lag)

    def _assignment_changed(self, partitions: list[tuple[str, int]], assigned: bool) -> None:
        self._forget_policies(partitions)
        if assigned:
            self._assigned.update(partitions)
            self._assigned_at = time.monotonic()
            waiting = self.restorer.begin(partitions)
            if waiting and self._io is not None:
                self._io.hold(waiting)  # read once restored (run() restores between batches)
        else:
            self.restorer.cancel(partitions)
            self._assigned.difference_update(partitions)
            for topic, partition in partitions:  # batches commit before the next poll: nothing in flight
                self.store.close_partition(topic, partition)
            self.metrics.store_objects.set(self.store.count())
        self.health.assigned(len(self._assigned))
        for topic, partition in partitions:
            if assigned:
                self.metrics.consumer_lag.labels(topic=topic, partition=str(partition)).set(0)
            else:
                with contextlib.suppress(KeyError):  # never reported: nothing to remove
                    self.metrics.consumer_lag.remove(topic, str(partition))

    def write_summary(self) -> None:
        path = self.config.run.summary_path
        if not path:
            return
        out = self.summary.as_dict()
        out["latencies_s"] = self.summary.latencies_s
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(out, indent=1))
