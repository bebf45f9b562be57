"""State moves with its partition: the store's changelog on the real Kafka, across kills, scaling and loss.

ZTF-like alerts carry 30 days of history, and CRTS cadences put only a few points in 30 days: an instance
that rebuilt an object from alert histories would annotate it with far fewer points than the oracle's
count. So "(objectId, n_points) of every annotation equals the oracle's set" shows every object kept its
full light curve across the move, and that no eligible alert was left unanswered.
"""

from __future__ import annotations

import collections
import re
import signal
import threading
import time

import pytest
from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from broker.kafka_io import KafkaSink
from broker.offline.replay import Pace, Selection, replay
from broker.pipeline import FAULT_ENV, FAULT_EXIT_CODE
from tests.integration import test_pipeline_e2e as e2e
from tests.integration.plugin import read_annotations, sigkill_after_records, write_config
from tests.integration.test_pipeline_e2e import MAX_POINTS, expected_alert_keys

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

crts_objects = e2e.crts_objects  # the same module-scoped fixture of clean CRTS objects


def replay_to(kafka, topic, objects, run_dir, pace=None):
    sink = KafkaSink(kafka.bootstrap_servers, topic)
    try:
        return replay(objects, sink, "ztf", pace, selection=Selection(max_points=MAX_POINTS), run_dir=run_dir)
    finally:
        sink.close()


def wait_for_members(kafka, group: str, n: int, runs, timeout: float = 180) -> None:
    """Until group `group` is stable with `n` members holding partitions (failing if a plugin dies)."""
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    deadline = time.time() + timeout
    while True:
        (future,) = admin.describe_consumer_groups([group]).values()
        try:
            g = future.result()
            if (
                g.state == ConsumerGroupState.STABLE
                and sum(bool(m.assignment.topic_partitions) for m in g.members) == n
            ):
                return
        except Exception:
            pass
        assert time.time() < deadline, f"group {group} never had {n} members"
        for r in runs:
            assert r.process.poll() is None, r.log_tail()
        time.sleep(0.3)


def restored_records(run) -> int:
    """Changelog records the run's log says it restored, summed over its restores."""
    text = run.config_path.with_suffix(".log").read_text(errors="replace")
    return sum(int(n) for n in re.findall(r"restored from \S+ offset \d+: (\d+) records", text))


def keys_of(records) -> list[tuple[str, int]]:
    return [(r["objectId"], r["n_points"]) for r in records]


def test_exactly_once_two_instances_one_killed(kafka, new_topic, crts_objects, tmp_path):
    """Two instances share a 4-partition stream; one is SIGKILLed mid-stream. The survivor restores the
    dead one's partitions from the changelog: full point counts, every alert answered, no committed
    duplicate. The session timeout outlasts the idle exit: the survivor, idle once its own partitions are
    read, must wait for the broker to evict the dead member and hand its backlog on."""
    src, out, dlq = new_topic(partitions=4), new_topic(), new_topic()
    runs = [
        write_config(
            tmp_path / f"e{k}.toml", kafka.bootstrap_servers, src, out, dlq, "g-eos-move",
            tmp_path / f"e{k}.sqlite",
            idle_exit_s=8.0, batch_size=50,
            kafka_extra=f'delivery = "exactly-once"\ntransactional_id = "varstream-move-{k}"\n'
            'consumer_config = { "session.timeout.ms" = 15000 }',
        ).start()
        for k in range(2)
    ]  # fmt: skip
    wait_for_members(kafka, "g-eos-move", 2, runs)
    objects = crts_objects[:60]
    replay_to(kafka, src, objects, tmp_path)
    expected = expected_alert_keys(tmp_path / "truth.csv")
    sigkill_after_records(runs[0], kafka.bootstrap_servers, out, len(expected) // 3)
    assert runs[1].wait(240) == 0, runs[1].log_tail()

    keys = keys_of(read_annotations(kafka.bootstrap_servers, out))  # read_committed
    assert len(keys) == len(set(keys)), "a committed duplicate"
    assert set(keys) == expected
    assert restored_records(runs[1]) > 0, "the survivor took over state from the changelog"
    assert committed_lag_all(kafka, "g-eos-move", src, 4) == 0


def committed_lag_all(kafka, group: str, topic: str, partitions: int) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": group})
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        lag = 0
        for tp in consumer.committed(tps, timeout=10):
            _lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            lag += hi - max(tp.offset, 0)
        return lag
    finally:
        consumer.close()


def test_scaling_one_to_three_and_back_while_the_stream_runs(kafka, new_topic, crts_objects, tmp_path):
    src, out, dlq = new_topic(partitions=4), new_topic(), new_topic()

    def instance(k: int, idle: float):
        return write_config(
            tmp_path / f"s{k}.toml", kafka.bootstrap_servers, src, out, dlq, "g-scale-state",
            tmp_path / f"s{k}.sqlite", idle_exit_s=idle, batch_size=50,
        )  # fmt: skip

    first = instance(0, idle=8.0).start()
    wait_for_members(kafka, "g-scale-state", 1, [first])
    objects = crts_objects[:60]
    stream = threading.Thread(
        target=replay_to, args=(kafka, src, objects, tmp_path, Pace.at_rate(60)), daemon=True
    )  # 3,600 alerts: about a minute
    stream.start()
    extra = [instance(k, idle=0).start() for k in (1, 2)]
    wait_for_members(kafka, "g-scale-state", 3, [first, *extra])
    time.sleep(4)  # all three process for a while
    assert stream.is_alive(), "the stream must still run when scaling back (slow the pace)"
    for r in extra:
        r.process.send_signal(signal.SIGTERM)
    for r in extra:
        assert r.wait(60) == 0, r.log_tail()
    stream.join(120)
    assert first.wait(240) == 0, first.log_tail()

    summaries = [r.summary() for r in (first, *extra)]
    assert all(s["alerts_in"] > 0 for s in summaries), "all three instances took part"
    assert sum(s["alerts_in"] for s in summaries) >= len(objects) * MAX_POINTS
    keys = keys_of(read_annotations(kafka.bootstrap_servers, out))
    assert set(keys) == expected_alert_keys(tmp_path / "truth.csv")
    assert len(keys) == len(set(keys)), "graceful rebalances commit before they move a partition"
    assert restored_records(first) > 0, "partitions came back to the first instance with their state"
    assert committed_lag_all(kafka, "g-scale-state", src, 4) == 0


def test_crash_before_store_commit_is_repaired_and_lost_store_rebuilt(
    kafka, new_topic, crts_objects, tmp_path, monkeypatch
):
    """A fault between the offset commit and the store commit is detected at restart and repaired from
    the changelog; later the local store is deleted and rebuilt from the changelog before answering.
    The annotations equal an uninterrupted run's."""
    src, out, out_ref, dlq = new_topic(), new_topic(), new_topic(), new_topic()
    objects = crts_objects[:40]
    replay_to(kafka, src, objects, tmp_path)
    store = tmp_path / "f.sqlite"

    def run(
        idle: float = 4.0, max_alerts: int = 0, group: str = "g-fault", output: str = out, name: str = "f"
    ):
        r = write_config(
            tmp_path / f"{name}.toml", kafka.bootstrap_servers, src, output, dlq, group,
            tmp_path / f"{name}.sqlite", idle_exit_s=idle, batch_size=100,
            kafka_extra='consumer_config = { "session.timeout.ms" = 6000 }',  # the crashed member leaves soon
        )  # fmt: skip
        if max_alerts:
            text = r.config_path.read_text().replace("[run]\n", f"[run]\nmax_alerts = {max_alerts}\n")
            r.config_path.write_text(text)
        return r

    reference = run(group="g-fault-ref", output=out_ref, name="ref").start()
    assert reference.wait() == 0, reference.log_tail()

    monkeypatch.setenv(FAULT_ENV, "3")
    crashed = run(name="f").start()
    assert crashed.wait() == FAULT_EXIT_CODE, crashed.log_tail()
    monkeypatch.delenv(FAULT_ENV)
    assert committed_lag_all(kafka, "g-fault", src, 1) == len(objects) * MAX_POINTS - 300

    resumed = run(max_alerts=600, name="f").start()
    assert resumed.wait() == 0, resumed.log_tail()
    assert "behind the committed input offset (200 < 300)" in resumed.log_tail(200_000)

    files = list(tmp_path.glob(f"{store.stem}.*.sqlite*"))
    assert files
    for f in files:
        f.unlink()
    rebuilt = run(name="f").start()
    assert rebuilt.wait() == 0, rebuilt.log_tail()
    assert restored_records(rebuilt) > 0

    got, want = (
        read_annotations(kafka.bootstrap_servers, out),
        read_annotations(kafka.bootstrap_servers, out_ref),
    )
    assert sorted(keys_of(got)) == sorted(keys_of(want))  # every alert once, with its full light curve
    assert set(keys_of(got)) == expected_alert_keys(tmp_path / "truth.csv")
    by_key = {(r["objectId"], r["n_points"]): r for r in want}
    for r in got:
        ref = by_key[(r["objectId"], r["n_points"])]
        assert r["predicted_class"] == ref["predicted_class"]
        assert r["period_days"] == pytest.approx(ref["period_days"], rel=1e-9)
    assert collections.Counter(r["alertId"] for r in got).most_common(1)[0][1] == 1
    assert committed_lag_all(kafka, "g-fault", src, 1) == 0
