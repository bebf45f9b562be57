"""Lazy history through the real plugin: the same LSST stream (12-month histories) answered twice, with
decode.history = "full" and "lazy", must give the same annotations, and the lazy run must skip most
histories (counted in its run summary)."""

from __future__ import annotations

import numpy as np
import pytest

from broker.kafka_io import KafkaSink
from broker.offline.replay import Selection, replay
from models.data import read_crts
from tests.integration.plugin import read_annotations, write_config

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N_OBJECTS = 30
N_POINTS = 60
KEYS = ("objectId", "alertId", "n_points", "bands", "baseline_days", "predicted_class")


@pytest.fixture(scope="module")
def objects(shared_data):
    rng = np.random.default_rng(11)
    found = [
        o
        for o in read_crts(shared_data / "crts_kvmu" / "raw-lc_17-05-2017_1615.tar.xz")
        if len(o.lightcurve) >= N_POINTS
    ]
    return [found[i] for i in sorted(rng.choice(len(found), N_OBJECTS, replace=False))]


def answer(kafka, new_topic, tmp_path, src, schema_folder, history: str):
    out, dlq = new_topic(), new_topic()
    run = write_config(
        tmp_path / f"{history}.toml",
        kafka.bootstrap_servers,
        src,
        out,
        dlq,
        f"g-{history}",
        tmp_path / f"{history}.sqlite",
        kafka_extra=f'schema_dirs = ["{schema_folder}"]',
    )
    run.config_path.write_text(
        run.config_path.read_text() + f'\n[decode]\nhistory = "{history}"\nreconcile_every = 20\n'
    )
    assert run.start().wait(timeout=240) == 0, run.log_tail()
    return run.summary(), read_annotations(kafka.bootstrap_servers, out)


def test_lazy_history_gives_the_annotations_of_the_full_decode(kafka, new_topic, objects, tmp_path):
    src = new_topic()
    sink = KafkaSink(kafka.bootstrap_servers, src)
    try:
        stats = replay(objects, sink, "lsst", selection=Selection(max_points=N_POINTS), run_dir=tmp_path)
    finally:
        sink.close()

    full_summary, full = answer(kafka, new_topic, tmp_path, src, stats.schema_folder, "full")
    lazy_summary, lazy = answer(kafka, new_topic, tmp_path, src, stats.schema_folder, "lazy")

    for s in (full_summary, lazy_summary):
        assert s["alerts_in"] == N_OBJECTS * N_POINTS and s["accounting_holds"] and s["dead_lettered"] == 0
    assert full_summary["skipped"] == lazy_summary["skipped"]
    assert full_summary["history_decisions"] == {}
    decisions = lazy_summary["history_decisions"]
    assert sum(decisions.values()) == N_OBJECTS * N_POINTS
    assert decisions.get("skipped:known", 0) > 0.5 * N_OBJECTS * N_POINTS

    assert len(full) == len(lazy) > 0
    by_alert = {r["alertId"]: r for r in full}
    for r in lazy:
        f = by_alert[r["alertId"]]
        assert {k: r[k] for k in KEYS} == {k: f[k] for k in KEYS}
        assert r["period_days"] == pytest.approx(f["period_days"], rel=1e-9)
        np.testing.assert_allclose(r["probabilities"], f["probabilities"], atol=1e-5)
