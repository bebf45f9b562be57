"""`[run] mode = "ceiling"` (the bench's upper bound), as a separate process through the real Kafka.

Every decoded alert is consumed, skipped as ceiling_mode and committed; nothing is stored or annotated; a
message that is not an alert still goes to the dead-letter topic.
"""

from __future__ import annotations

import sqlite3

import pytest
from confluent_kafka import Producer

from broker.kafka_io import KafkaSink
from broker.offline.replay import Selection, replay
from models.data import read_crts
from tests.integration.plugin import committed_lag, read_topic, write_config

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N_OBJECTS = 20
MAX_POINTS = 60  # beyond the trigger's 50 points: a full run would classify these objects


def stored_object_rows(path) -> int:
    """Rows keyed by an object id in any table of the store file (0 when there is no file)."""
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return sum(
            db.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0]
            for t in tables
            if any("object" in c[1].lower() for c in db.execute(f'PRAGMA table_info("{t}")'))
        )


def test_ceiling_mode_decodes_and_commits_but_stores_and_classifies_nothing(
    kafka, new_topic, shared_data, tmp_path
):
    src, out, dlq = new_topic(), new_topic(), new_topic()
    objects = read_crts(shared_data / "crts_kvmu" / "raw-lc_17-05-2017_1615.tar.xz")[:N_OBJECTS]
    sink = KafkaSink(kafka.bootstrap_servers, src)
    try:
        stats = replay(objects, sink, "ztf", selection=Selection(max_points=MAX_POINTS), run_dir=tmp_path)
    finally:
        sink.close()
    junk = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    junk.produce(src, b"not an alert", key=b"junk")
    junk.flush(10)

    store = tmp_path / "store.sqlite"
    run = write_config(tmp_path / "c.toml", kafka.bootstrap_servers, src, out, dlq, "g-ceiling", store)
    with open(run.config_path, "a") as handle:  # [run] is the last section
        handle.write('mode = "ceiling"\n')
    assert run.start().wait() == 0, run.log_tail()
    summary = run.summary()

    assert summary["alerts_in"] == stats.n_alerts + 1
    assert summary["skipped"] == {"ceiling_mode": stats.n_alerts}
    assert summary["annotated"] == 0
    assert summary["dead_lettered_by_reason"] == {"undecodable": 1}
    assert summary["accounting_holds"]
    assert read_topic(kafka.bootstrap_servers, out, timeout=2) == []
    assert len(read_topic(kafka.bootstrap_servers, dlq)) == 1
    assert stored_object_rows(store) == 0
    assert committed_lag(kafka.bootstrap_servers, "g-ceiling", src) == 0
