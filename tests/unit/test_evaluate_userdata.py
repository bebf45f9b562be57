"""`varstream evaluate` on the user's own data: a multi-band CSV written here from real OGLE-IV I/V data.

The shipped classifier has no classical-Cepheid class, so the Cepheids are its unseen set: the report
counts what it calls them and scores novelty on them; all bands of each star go into its windows.
"""

from __future__ import annotations

import csv
import json
import math

import pytest

from broker.cli import main as varstream
from broker.offline.archives import open_archive
from broker.offline.archives.base import REDUCED_HJD_TO_MJD

N_PER_MODE = 3


@pytest.fixture(scope="module")
def ogle_as_csv(tmp_path_factory, shared_data):
    """A CSV folder (one file per star; HJD-2450000 as OGLE gives it) and the stars written to it."""
    archive = open_archive(f"ogle:{shared_data / 'ogle_lmc_cepheids'}", bands="I,V", label="type_subtype")
    chosen, per_mode = [], {}
    for obj in archive:
        wanted = obj.label in ("Cep_F", "Cep_1O") and per_mode.get(obj.label, 0) < N_PER_MODE
        if wanted and obj.lightcurve.bands == ["I", "V"]:
            per_mode[obj.label] = per_mode.get(obj.label, 0) + 1
            chosen.append(obj)
    folder = tmp_path_factory.mktemp("ogle_csv")
    for obj in chosen:
        lc = obj.lightcurve
        with (folder / f"{obj.object_id}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["hjd", "magnitude", "error", "band", "class", "period"])
            for t, m, e, b in zip(lc.mjd, lc.mag, lc.magerr, lc.band, strict=True):
                period = "" if obj.period is None else obj.period
                writer.writerow([f"{t - REDUCED_HJD_TO_MJD:.5f}", m, e, b, obj.label, period])
    return folder, chosen


def test_evaluate_reads_a_multiband_csv_with_all_its_bands(ogle_as_csv, tmp_path):
    folder, stars = ogle_as_csv
    out = tmp_path / "eval"
    argv = ["evaluate", "--data", f"csv:{folder}", "--time-col", "hjd", "--time-format", "hjd-2450000",
            "--mag-col", "magnitude", "--err-col", "error", "--band-col", "band", "--class-col", "class",
            "--period-col", "period", "--out", str(out), "--no-progress",
            "--cache-dir", str(tmp_path / "c")]  # fmt: skip
    assert varstream(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_objects"] == len(stars) == 2 * N_PER_MODE
    assert metrics["n_objects_with_windows"] == len(stars)
    # no known class among Cepheids: nothing to score for accuracy, everything is counted as "called"
    assert metrics["n_objects_classified"] == 0 and math.isnan(metrics["accuracy"])
    called = metrics["called_unknown_classes"]
    assert set(called) == {"Cep_F", "Cep_1O"}
    assert sum(sum(c.values()) for c in called.values()) == len(stars)
    assert metrics["novelty"]["n_unseen"] == len(stars)
    # the served pair: the contrastive-trained classifier, novelty from crts-itcn's k-NN head
    assert metrics["classifier"]["name"] == "crts-itcn-supcon" and "novelty_head" not in metrics
    assert metrics["novelty"]["bundle"]["name"] == "crts-itcn-knn10-pa"
    # every point of both bands reached the period search and the folding
    rows = {r["object_id"]: r for r in csv.DictReader((out / "objects.csv").open())}
    for star in stars:
        assert int(rows[star.object_id]["n_points"]) == len(star.lightcurve)
    # the F-mode stars carry catalogue periods; the plugin's search finds them
    recovery = metrics["period_recovery"]
    assert recovery["n"] == N_PER_MODE and recovery["within_tolerance"] == 1.0


def test_a_classifier_bundle_scores_novelty_with_its_head(ogle_as_csv, tmp_path):
    """The default novelty model is crts-itcn's k-NN head (`models.head_novelty`), served beside the
    crts-itcn-supcon classifier. Evaluating crts-itcn itself, the novelty section is its own head
    section, number for number."""
    from models.bundle import DEFAULT_NOVELTY_BUNDLE

    folder, stars = ogle_as_csv
    out = tmp_path / "eval"
    argv = ["evaluate", "--data", f"csv:{folder}", "--time-col", "hjd", "--time-format", "hjd-2450000",
            "--mag-col", "magnitude", "--err-col", "error", "--band-col", "band", "--class-col", "class",
            "--bundle", str(DEFAULT_NOVELTY_BUNDLE), "--out", str(out), "--no-progress",
            "--cache-dir", str(tmp_path / "c")]  # fmt: skip
    assert varstream(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    novelty, head = metrics["novelty"], metrics["novelty_head"]
    assert metrics["classifier"]["name"] == "crts-itcn"
    assert novelty["bundle"] == head["head"] == {"name": "crts-itcn-knn10-pa", "version": "1.0.0"}
    assert novelty["n_unseen"] == len(stars)
    for level in ("p80", "p95"):
        assert novelty[level] == head[level]
