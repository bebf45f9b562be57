"""The plugin as a separate process, through the real Apache Kafka, on real CRTS light curves.

Alerts are replayed with `broker.offline.replay`; the expected annotations come from an oracle written out in
tests/integration/plugin.py (first at 50 points, then at every 10% growth), not from the plugin's code.
"""

from __future__ import annotations

import collections
import csv
import signal
import time

import numpy as np
import pytest
import requests
from confluent_kafka import Producer

from broker.codecs import encode_ztf
from broker.codecs.resolver import wire_header
from broker.kafka_io import DLQ_HEADER_OFFSET, DLQ_HEADER_REASON, KafkaSink
from broker.offline.replay import Selection, replay
from models.data import read_crts
from tests.fixtures.prometheus import free_port
from tests.integration.plugin import (
    MIN_POINTS,
    committed_lag,
    expected_trigger_indices,
    read_annotations,
    read_topic,
    sigkill_after_records,
    wait_for_records,
    write_config,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N_OBJECTS = 200
MAX_POINTS = 60


@pytest.fixture(scope="module")
def crts_objects(shared_data):
    """CRTS objects whose first MAX_POINTS detections are distinct in time with positive errors, so every
    alert adds exactly one point to the object's light curve (the oracle's assumption)."""
    objects = read_crts(shared_data / "crts_kvmu" / "raw-lc_17-05-2017_1615.tar.xz")
    clean = []
    for o in objects:
        lc = o.lightcurve
        head = slice(0, MAX_POINTS)
        t_ms = np.round(lc.mjd[head] * 86_400_000)
        if len(lc) >= MAX_POINTS and len(np.unique(t_ms)) == MAX_POINTS and (lc.magerr[head] > 0).all():
            clean.append(o)
    rng = np.random.default_rng(7)
    return [clean[i] for i in sorted(rng.choice(len(clean), N_OBJECTS, replace=False))]


def topics(kafka, new_topic):
    return new_topic(), new_topic(), new_topic()


def replay_into(kafka, topic, objects, flavour, run_dir, max_points=MAX_POINTS):
    sink = KafkaSink(kafka.bootstrap_servers, topic)
    try:
        stats = replay(objects, sink, flavour, selection=Selection(max_points=max_points), run_dir=run_dir)
    finally:
        sink.close()
    return stats


def expected_alert_keys(truth_csv) -> set[tuple[str, int]]:
    """(objectId, number of points at the alert) for every alert the oracle says must be annotated."""
    expected = set()
    with open(truth_csv) as handle:
        for row in csv.DictReader(handle):
            for i in expected_trigger_indices(int(row["n_points"])):
                expected.add((row["objectId"], i + 1))
    return expected


@pytest.mark.parametrize("flavour", ["ztf", "lsst"])
def test_every_eligible_alert_is_answered_once(kafka, new_topic, crts_objects, tmp_path, flavour):
    src, out, dlq = topics(kafka, new_topic)
    stats = replay_into(kafka, src, crts_objects, flavour, tmp_path)
    kafka_extra = f'schema_dirs = ["{stats.schema_folder}"]' if flavour == "lsst" else ""
    run = write_config(
        tmp_path / "p.toml",
        kafka.bootstrap_servers,
        src,
        out,
        dlq,
        "g-" + flavour,
        tmp_path / "store.sqlite",
        kafka_extra=kafka_extra,
    )
    assert run.start().wait() == 0, run.log_tail()
    summary = run.summary()

    # The accounting identity, exactly.
    assert summary["alerts_in"] == stats.n_alerts == N_OBJECTS * MAX_POINTS
    skipped = sum(summary["skipped"].values())
    assert summary["annotated"] + skipped + summary["dead_lettered"] == summary["alerts_in"]
    assert summary["dead_lettered"] == 0
    assert summary["skipped"]["too_few_points"] == N_OBJECTS * (MIN_POINTS - 1)

    # Every eligible alert answered by exactly one schema-valid annotation (validated on decode).
    records = read_annotations(kafka.bootstrap_servers, out)
    alert_ids = [r["alertId"] for r in records]
    assert len(alert_ids) == len(set(alert_ids)) == summary["annotated"]
    assert {(r["objectId"], r["n_points"]) for r in records} == expected_alert_keys(tmp_path / "truth.csv")
    for r in records:
        assert r["survey"] == flavour
        assert r["predicted_class"] == r["class_names"][int(np.argmax(r["probabilities"]))]
        assert abs(sum(r["probabilities"]) - 1) < 1e-6
        assert r["period_days"] > 0 and r["windows_used"] >= 1
        assert r["annotated_at_ms"] >= r["alert_timestamp_ms"]
    # All input offsets committed.
    assert committed_lag(kafka.bootstrap_servers, "g-" + flavour, src) == 0


def test_sigkill_mid_stream_leaves_no_alert_unanswered(kafka, new_topic, crts_objects, tmp_path):
    objects = crts_objects[:100]
    src, out_ref, dlq = topics(kafka, new_topic)
    out_killed = new_topic()
    replay_into(kafka, src, objects, "ztf", tmp_path)

    ref = write_config(
        tmp_path / "ref.toml", kafka.bootstrap_servers, src, out_ref, dlq, "g-ref", tmp_path / "ref.sqlite"
    )
    assert ref.start().wait() == 0, ref.log_tail()
    reference = {r["alertId"] for r in read_annotations(kafka.bootstrap_servers, out_ref)}
    assert reference

    # Small batches so the kill lands mid-stream; wait until some annotations are out, then SIGKILL.
    killed = write_config(
        tmp_path / "k.toml",
        kafka.bootstrap_servers,
        src,
        out_killed,
        dlq,
        "g-kill",
        tmp_path / "k.sqlite",
        batch_size=50,
        # the dead member holds its partitions until its session times out: keep that short here
        kafka_extra='consumer_config = { "session.timeout.ms" = 6000 }',
    )
    killed.start()
    sigkill_after_records(killed, kafka.bootstrap_servers, out_killed, len(reference) // 4)
    before = len(read_topic(kafka.bootstrap_servers, out_killed))
    assert 0 < before < len(reference), "the kill must land mid-stream"

    assert killed.start().wait() == 0, killed.log_tail()
    records = read_annotations(kafka.bootstrap_servers, out_killed)
    answered = [r["alertId"] for r in records]
    assert set(answered) == reference  # nothing lost, nothing invented
    duplicates = [a for a, n in collections.Counter(answered).items() if n > 1]
    assert len(duplicates) <= 50, "duplicates only from the one uncommitted batch"
    assert committed_lag(kafka.bootstrap_servers, "g-kill", src) == 0


def test_poison_messages_go_to_the_dead_letter_topic(kafka, new_topic, crts_objects, tmp_path):
    src, out, dlq = topics(kafka, new_topic)
    objects = crts_objects[:10]
    replay_into(kafka, src, objects, "ztf", tmp_path, max_points=MIN_POINTS + 5)
    poison = {
        b"garbage": "undecodable",
        encode_ztf_truncated(): "undecodable",
        foreign_container(): "missing_field",
        wire_header(424242) + b"\x02\x04ab": "unknown_schema",
    }
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    for payload in poison:
        producer.produce(src, key=b"poison", value=payload)
    producer.flush()
    replay_into(kafka, src, objects[:5], "ztf", tmp_path / "after", max_points=MIN_POINTS + 5)

    run = write_config(
        tmp_path / "p.toml", kafka.bootstrap_servers, src, out, dlq, "g-poison", tmp_path / "store.sqlite"
    )
    assert run.start().wait() == 0, run.log_tail()
    summary = run.summary()
    assert summary["dead_lettered"] == len(poison)
    dead = read_topic(kafka.bootstrap_servers, dlq)
    got = {m.value(): dict(m.headers())[DLQ_HEADER_REASON].decode() for m in dead}
    assert got == poison  # the original bytes, each with its reason
    for m in dead:
        assert int(dict(m.headers())[DLQ_HEADER_OFFSET]) >= 10 * (MIN_POINTS + 5)
    # the valid alerts around them were all answered: 2 per object in the first pass (at 50 and 55 points);
    # the second pass repeats the same detections, which add no new points, so nothing more.
    records = read_annotations(kafka.bootstrap_servers, out)
    assert len(records) == 2 * len(objects)
    assert summary["annotated"] + sum(summary["skipped"].values()) + len(poison) == summary["alerts_in"]


def test_sigterm_finishes_the_batch_commits_and_exits_zero(kafka, new_topic, crts_objects, tmp_path):
    src, out, dlq = topics(kafka, new_topic)
    replay_into(kafka, src, crts_objects[:60], "ztf", tmp_path)
    run = write_config(
        tmp_path / "t.toml",
        kafka.bootstrap_servers,
        src,
        out,
        dlq,
        "g-term",
        tmp_path / "store.sqlite",
        idle_exit_s=0,
        batch_size=100,
        metrics_port=(port := free_port()),
    )
    run.start()
    wait_for_records(run, kafka.bootstrap_servers, out, 1)
    # While it works, the probes say so: the loop beats and holds the topic's one partition.
    for probe in ("healthz", "readyz"):
        reply = requests.get(f"http://127.0.0.1:{port}/{probe}", timeout=5)
        assert reply.status_code == 200, reply.text
        assert reply.json()["state"] == "running" and reply.json()["assigned_partitions"] == 1
    metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert "varstream_alerts_consumed_total" in metrics
    run.process.send_signal(signal.SIGTERM)
    assert run.wait(60) == 0, run.log_tail()
    summary = run.summary()
    assert summary["alerts_in"] > 0
    # what was consumed was committed: the committed offset is exactly the number of alerts handled
    lag = committed_lag(kafka.bootstrap_servers, "g-term", src)
    assert lag == 60 * MAX_POINTS - summary["alerts_in"]
    assert len(read_annotations(kafka.bootstrap_servers, out)) == summary["annotated"]


def encode_ztf_truncated() -> bytes:
    """A valid ZTF container cut in half."""
    from broker.codecs import build_ztf_alert, point_id
    from models.lightcurve import LightCurve

    lc = LightCurve.from_arrays([1.0, 2.0], [15.0, 15.1], [0.05, 0.05], "g")
    payload = encode_ztf(build_ztf_alert("ZTFpoison", point_id("ZTFpoison", 1), lc, 1))
    return payload[: len(payload) // 2]


def foreign_container() -> bytes:
    """A well-formed Avro container of a schema that is not an alert."""
    import io

    import fastavro

    buf = io.BytesIO()
    schema = {"type": "record", "name": "Other", "fields": [{"name": "a", "type": "int"}]}
    fastavro.writer(buf, fastavro.parse_schema(schema), [{"a": 1}])
    return buf.getvalue()


def test_exactly_once_survives_sigkill_without_duplicates(kafka, new_topic, crts_objects, tmp_path):
    """delivery = exactly-once: outputs and input offsets commit in one Kafka transaction, so after a
    SIGKILL and restart a read_committed consumer sees every expected annotation exactly once."""
    objects = crts_objects[:40]
    src, out, dlq = topics(kafka, new_topic)
    replay_into(kafka, src, objects, "ztf", tmp_path)
    run = write_config(
        tmp_path / "eos.toml",
        kafka.bootstrap_servers,
        src,
        out,
        dlq,
        "g-eos",
        tmp_path / "eos.sqlite",
        batch_size=50,
        kafka_extra='delivery = "exactly-once"\ntransactional_id = "varstream-test-eos"\n'
        'consumer_config = { "session.timeout.ms" = 6000 }',
    )
    expected = expected_alert_keys(tmp_path / "truth.csv")
    run.start()
    sigkill_after_records(run, kafka.bootstrap_servers, out, len(expected) // 4)
    assert run.start().wait() == 0, run.log_tail()
    records = read_annotations(kafka.bootstrap_servers, out)  # read_committed
    keys = [(r["objectId"], r["n_points"]) for r in records]
    assert len(keys) == len(set(keys)), "a committed duplicate: the transaction did not fence the dead run"
    assert set(keys) == expected
    assert committed_lag(kafka.bootstrap_servers, "g-eos", src) == 0


def test_two_instances_in_one_group_share_the_stream(kafka, new_topic, crts_objects, tmp_path):
    """Scale-out: objects are keyed to partitions, so each instance sees whole objects and together they
    answer every eligible alert exactly once."""
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    src, out, dlq = new_topic(partitions=4), new_topic(), new_topic()
    runs = [
        write_config(
            tmp_path / f"i{k}.toml",
            kafka.bootstrap_servers,
            src,
            out,
            dlq,
            "g-scale",
            tmp_path / f"i{k}.sqlite",
            idle_exit_s=6.0,
        ).start()
        for k in range(2)
    ]
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    deadline = time.time() + 180
    while True:  # both members joined and hold partitions before the stream starts
        (future,) = admin.describe_consumer_groups(["g-scale"]).values()
        try:
            group = future.result()
            members = [m for m in group.members if m.assignment.topic_partitions]
            if group.state == ConsumerGroupState.STABLE and len(members) == 2:
                break
        except Exception:
            pass
        assert time.time() < deadline and all(r.process.poll() is None for r in runs), runs[0].log_tail()
        time.sleep(0.5)
    replay_into(kafka, src, crts_objects[:80], "ztf", tmp_path)
    for r in runs:
        assert r.wait() == 0, r.log_tail()
    summaries = [r.summary() for r in runs]
    assert all(s["alerts_in"] > 0 for s in summaries), "both instances must take part"
    assert sum(s["alerts_in"] for s in summaries) == 80 * MAX_POINTS
    records = read_annotations(kafka.bootstrap_servers, out)
    keys = [(r["objectId"], r["n_points"]) for r in records]
    assert len(keys) == len(set(keys)) == sum(s["annotated"] for s in summaries)
    assert set(keys) == expected_alert_keys(tmp_path / "truth.csv")
