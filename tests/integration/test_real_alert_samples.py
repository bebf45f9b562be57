"""Every real alert sample through the real plugin on the real Kafka: valid alerts are never dead-lettered.

The samples of ../shared/data/alert_samples go in as each survey publishes them (ZTF: one Avro container
per message; LSST: Confluent wire format with the official schema of the sample's version, and the
lsst-alert-packet fakeAlert.avro container), on one topic read with input_format "auto", together with
garbage bytes and a truncated ZTF alert. The run summary must balance, name the skip reasons, and the
dead-letter topic must hold exactly the two bad messages, byte for byte.
"""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from broker.kafka_io import DLQ_HEADER_REASON
from tests.fixtures.alert_samples import all_messages
from tests.integration.plugin import committed_lag, read_annotations, read_topic, write_config

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

USABLE_ZTF = "ztf_official/2019_01_10_739260766315010006.avro"
DP02_OBJECT = "1998903343203755338"


def test_every_real_sample_is_answered_or_skipped_and_only_bad_bytes_are_dead_lettered(
    kafka, new_topic, tmp_path
):
    src, out, dlq = new_topic(), new_topic(), new_topic()
    samples = all_messages()
    truncated = samples[USABLE_ZTF][: len(samples[USABLE_ZTF]) // 2]
    bad = {b"\x13 certainly not an alert \x00\xff" * 3: "undecodable", truncated: "undecodable"}
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    for name, payload in samples.items():
        producer.produce(src, key=name.encode(), value=payload)
    for payload in bad:
        producer.produce(src, key=b"bad", value=payload)
    producer.flush(30)

    run = write_config(
        tmp_path / "p.toml", kafka.bootstrap_servers, src, out, dlq, "g-samples", tmp_path / "store.sqlite"
    )
    assert run.start().wait(timeout=120) == 0, run.log_tail()
    summary = run.summary()

    n_in = len(samples) + len(bad)
    assert summary["alerts_in"] == n_in and summary["accounting_holds"], summary
    skipped = summary["skipped"]
    assert summary["annotated"] + sum(skipped.values()) + summary["dead_lettered"] == n_in
    # Only the two bad messages are dead letters. Every valid alert is answered or skipped with a named
    # reason: the decoder's (nothing usable in it) or the trigger's (fewer than its 50 points so far).
    assert summary["dead_lettered_by_reason"] == {"undecodable": 2}
    assert skipped == {
        "no_reference_source": 2,
        "no_total_flux": 10,
        "no_usable_points": 4,
        "too_few_points": 5,
    }
    # The DP0.2 object's 55 direct-image forced-photometry points are enough to classify it.
    (annotation,) = read_annotations(kafka.bootstrap_servers, out)
    assert summary["annotated"] == 1
    assert (annotation["objectId"], annotation["survey"], annotation["n_points"]) == (DP02_OBJECT, "lsst", 55)

    dead = read_topic(kafka.bootstrap_servers, dlq)
    assert {m.value(): dict(m.headers())[DLQ_HEADER_REASON].decode() for m in dead} == bad
    assert not {m.value() for m in dead} & set(samples.values())
    assert committed_lag(kafka.bootstrap_servers, "g-samples", src) == 0
