"""The live system scores like the offline evaluation: held-out CRTS objects through Kafka and the plugin.

The default classifier's held-out split is replayed (first 138 detections of each object: with the trigger's
50-point start and 10% steps the last alert is classified, so the stream's final answer sees the same light
curve as the offline evaluation), `varstream evaluate-stream` scores the annotations topic, and
`varstream evaluate` scores the same objects cut to the same points from CRTS-format files.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from broker.kafka_io import KafkaSink
from broker.offline.demo import held_out_ids
from broker.offline.replay import Selection, replay
from models.bundle import DEFAULT_CLASSIFIER_BUNDLE, load_bundle
from models.data import read_crts
from tests.integration.plugin import REPO, expected_trigger_indices, write_config

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N_OBJECTS = 100
N_POINTS = 138
assert expected_trigger_indices(N_POINTS)[-1] == N_POINTS - 1  # the last alert is classified


def write_crts_folder(objects, folder, n_points):
    """The objects, cut to their first n_points, as CRTS `<ID>-<CLASS>.csv` files."""
    folder.mkdir()
    for o in objects:
        lc = o.lightcurve
        with open(folder / f"{o.object_id}-{o.label}.csv", "w", newline="") as handle:
            writer = csv.writer(handle, quoting=csv.QUOTE_NONNUMERIC)
            writer.writerow(["ID", "MJD", "mag", "magerr", "RA", "Dec"])
            for i in range(n_points):
                writer.writerow(
                    [o.object_id, float(lc.mjd[i]), float(lc.mag[i]), float(lc.magerr[i]), 0.0, 0.0]
                )


def varstream(*args):
    result = subprocess.run([sys.executable, "-m", "broker", *args], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def test_stream_accuracy_matches_offline_evaluation(kafka, new_topic, shared_data, tmp_path):
    bundle = load_bundle(DEFAULT_CLASSIFIER_BUNDLE)
    held_out = held_out_ids(bundle.metadata)
    assert held_out, "the default bundle must record its held-out objects"
    known = set(bundle.class_names)
    objects = [
        o
        for o in read_crts(shared_data / "crts_kvmu" / "raw-lc_17-05-2017_1615.tar.xz")
        if o.object_id in held_out
        and o.label in known
        and len(o.lightcurve) >= N_POINTS
        and len(np.unique(np.round(o.lightcurve.mjd[:N_POINTS] * 86_400_000))) == N_POINTS
    ]
    rng = np.random.default_rng(1)
    objects = [objects[i] for i in sorted(rng.choice(len(objects), N_OBJECTS, replace=False))]

    src, out, dlq = new_topic(), new_topic(), new_topic()
    sink = KafkaSink(kafka.bootstrap_servers, src)
    replay(objects, sink, "ztf", selection=Selection(max_points=N_POINTS), run_dir=tmp_path / "run")
    sink.close()
    run = write_config(
        tmp_path / "p.toml", kafka.bootstrap_servers, src, out, dlq, "g-acc", tmp_path / "s.sqlite"
    )
    assert run.start().wait(900) == 0, run.log_tail()

    varstream(
        "evaluate-stream",
        "--bootstrap",
        kafka.bootstrap_servers,
        "--topic",
        out,
        "--truth",
        str(tmp_path / "run" / "truth.csv"),
        "--out",
        str(tmp_path / "stream"),
    )
    write_crts_folder(objects, tmp_path / "crts", N_POINTS)
    varstream(
        "evaluate",
        "--bundle",
        str(DEFAULT_CLASSIFIER_BUNDLE),
        "--data",
        f"crts:{tmp_path / 'crts'}",
        "--out",
        str(tmp_path / "offline"),
    )

    stream = json.loads((tmp_path / "stream" / "metrics.json").read_text())
    offline = json.loads((tmp_path / "offline" / "metrics.json").read_text())
    assert stream["n_objects"] == offline["n_objects"] == N_OBJECTS
    assert abs(stream["accuracy"] - offline["accuracy"]) <= 0.02, (stream["accuracy"], offline["accuracy"])
    assert offline["accuracy"] > 1.5 / len(known)  # a trained model, not chance
