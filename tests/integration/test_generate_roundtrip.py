"""Generated light curves go through the real tools: CRTS files from `varstream generate` are read by
models.data, replayed as alerts by `varstream replay`, scored by `varstream evaluate`, and the plugin's own
period search recovers the periods the generator was asked for."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from broker.cli import main as varstream
from broker.offline.generate import CadenceSpec, generate_lightcurves, search_and_fold
from models.data import read_crts
from models.pelsvae import load_pelsvae_bundle

CLASSES = ("RRab", "RRc", "EW", "HADS")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("generated")
    argv = ["generate", "--out", str(out), "--format", "crts", "--n", "4", "--seed", "3"]
    argv += ["--cadence", "random", "--n-points", "250", "--baseline-days", "1500"]
    for label in CLASSES:
        argv += ["--class", label]
    assert varstream(argv) == 0
    return out


def test_crts_files_read_back_with_their_truth(generated):
    objects = read_crts(generated / "lightcurves")
    truth = {row["objectId"]: row for row in csv.DictReader((generated / "truth.csv").open())}
    assert len(objects) == len(truth) == 4 * len(CLASSES)
    for obj in objects:
        assert truth[obj.object_id]["class"] == obj.label and len(obj.lightcurve) == 250
        assert np.isfinite(obj.lightcurve.mag).all() and (obj.lightcurve.magerr > 0).all()


def test_replay_turns_them_into_alerts(generated, tmp_path):
    run = tmp_path / "run"
    code = varstream(["replay", f"crts:{generated / 'lightcurves'}", "--out", str(run), "--to-folder",
                      "--as-fast-as-possible", "--no-progress"])  # fmt: skip
    assert code == 0
    rows = list(csv.DictReader((run / "truth.csv").open()))
    assert len(rows) == 4 * len(CLASSES)
    assert sum(1 for _ in (run / "alerts").rglob("*.avro")) >= 1


def test_evaluate_scores_them(generated, tmp_path):
    out = tmp_path / "eval"
    code = varstream(["evaluate", "--data", f"crts:{generated / 'lightcurves'}", "--out", str(out),
                      "--novelty-bundle", "none", "--no-progress", "--threads", "1"])  # fmt: skip
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_objects_classified"] == 4 * len(CLASSES)


def test_the_plugins_search_recovers_the_requested_periods():
    bundle = load_pelsvae_bundle()
    cadence = CadenceSpec("random", n_points=300, baseline_days=2500.0)
    objects = generate_lightcurves(bundle, ["RRab", "RRc", "EW"], 10, cadence, seed=11)
    searched = search_and_fold(objects)
    ratio = searched.found_periods / np.array([o.period for o in objects])
    assert np.mean(np.abs(ratio - 1) <= 0.01) >= 0.8
