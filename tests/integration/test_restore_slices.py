"""Restorer.step on a real changelog: a restore runs in time slices, each continuing where the last one
stopped, ends with every object restored, and a revoked partition's restore is dropped."""

from __future__ import annotations

import numpy as np
import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from broker.config import Config, KafkaConfig, StoreConfig
from broker.health import Health
from broker.metrics import Metrics
from broker.restore import Restorer
from broker.store import LightCurveStore
from models.lightcurve import LightCurve

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

N_OBJECTS = 3000


def changelog_records(n: int, tmp_path) -> list[tuple[str, bytes | None]]:
    """State records of `n` objects as the pipeline writes them (through a store transaction)."""
    from broker.store import StorePartition

    rng = np.random.default_rng(0)
    mjd = 60000 + np.cumsum(rng.uniform(0.5, 2.5, 100))
    lc = LightCurve.from_arrays(mjd, 17 + 0.3 * np.sin(mjd), np.full(100, 0.03), np.full(100, "g", object))
    part = StorePartition(tmp_path / "source.sqlite", StoreConfig(path=str(tmp_path / "source.sqlite")))
    txn = part.begin()
    for i in range(n):
        txn.merge(f"ZTF{i:08d}", lc)
    records = txn.prepare()
    txn.commit()
    part.close()
    return records


def test_a_restore_runs_in_slices_to_the_end(kafka, new_topic, tmp_path) -> None:
    changelog = new_topic(partitions=2, config={"cleanup.policy": "compact"})
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "linger.ms": 20})
    for key, value in changelog_records(N_OBJECTS, tmp_path):
        producer.produce(changelog, key=key, value=value, partition=1)
        producer.poll(0)
    assert producer.flush(30) == 0

    config = Config(kafka=KafkaConfig(bootstrap_servers=kafka.bootstrap_servers))
    store = LightCurveStore(StoreConfig(path=str(tmp_path / "restored.sqlite")))
    health = Health()
    restorer = Restorer(
        store, {"alerts": changelog}, config, Metrics(CollectorRegistry()), health, lambda: None
    )
    committed_asked = []

    def committed(partitions):
        committed_asked.extend(partitions)
        return {tp: 42 for tp in partitions}

    assert restorer.begin([("alerts", 0), ("alerts", 1), ("other", 0)]) == [("alerts", 0), ("alerts", 1)]
    assert health.report()[2]["restoring_partitions"] == 2
    finished, steps = [], 0
    while restorer.pending:
        finished += restorer.step(committed, read_committed=False, budget_s=0.0)  # one chunk per slice
        steps += 1
        assert steps < 200
    assert finished == [("alerts", 0), ("alerts", 1)]  # the empty one at once, the other in slices
    assert steps > 2, "the restore was not sliced"
    assert sorted(committed_asked) == [("alerts", 0), ("alerts", 1)]  # once per partition
    part = store.get("alerts", 1)
    assert part.count() == N_OBJECTS and part.input_offset == 42 and part.changelog_offset == N_OBJECTS
    assert store.get("alerts", 0).count() == 0
    assert health.report()[2]["restoring_partitions"] == 0

    # revoked before restored: dropped from the pending restores, readiness no longer waits for it
    restorer.begin([("alerts", 1)])
    assert restorer.pending == [("alerts", 1)]
    restorer.cancel([("alerts", 1)])
    assert restorer.pending == [] and health.report()[2]["restoring_partitions"] == 0
    store.close()
