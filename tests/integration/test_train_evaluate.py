"""End to end on real CRTS light curves: train tiny bundles, evaluate them, compare models, via the CLI."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest
import torch

from broker import cli
from models.bundle import load_bundle

# The first objects of these classes in the archive: four trained classes and the unseen RS_CVn.
SAMPLE = {"RRab": 10, "RRc": 10, "EA": 10, "EW": 10, "RS_CVn": 8}


@pytest.fixture(scope="module")
def crts_sample(shared_data: Path, tmp_path_factory) -> Path:
    """A folder of a few dozen real <ID>-<CLASS>.csv files plus the catalogue-period table."""
    folder = tmp_path_factory.mktemp("crts")
    crts = shared_data / "crts_kvmu"
    counts = dict.fromkeys(SAMPLE, 0)
    with tarfile.open(crts / "raw-lc_17-05-2017_1615.tar.xz", "r:xz") as archive:
        for member in archive:
            name = Path(member.name).name
            label = name.removesuffix(".csv").partition("-")[2]
            if member.isfile() and counts.get(label, 99) < SAMPLE.get(label, 0):
                (folder / name).write_bytes(archive.extractfile(member).read())
                counts[label] += 1
            if counts == SAMPLE:
                break
    shutil.copy(crts / "crts_train_labels_periods.csv", folder)
    return folder


@pytest.fixture(scope="module")
def restore_torch_threads():
    """The commands set torch threads (--threads 1); put the setting back for the rest of the session."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def varstream(*argv) -> None:
    assert cli.main([str(a) for a in argv]) == 0


def test_train_evaluate_compare_end_to_end(crts_sample, tmp_path, restore_torch_threads):
    data = f"crts:{crts_sample}"
    common = ["--min-class-count", 5, "--threads", 1, "--no-progress", "--cache-dir", tmp_path / "cache"]
    varstream("train", "--data", data, "--kind", "classifier", "--hidden", 8, "--epochs", 2,
              "--out", tmp_path / "clf", *common)  # fmt: skip
    varstream("train", "--data", data, "--kind", "novelty", "--hidden", 12, "--epochs", 1,
              "--out", tmp_path / "nov", *common)  # fmt: skip

    classifier, novelty = load_bundle(tmp_path / "clf"), load_bundle(tmp_path / "nov")
    assert classifier.class_names == novelty.class_names == ["EA", "EW", "RRab", "RRc"]
    assert classifier.window == novelty.window and classifier.period_search == novelty.period_search
    test_metrics = novelty.metadata["test_metrics"]
    assert test_metrics["novelty"]["unseen_classes"] == ["RS_CVn"]
    assert test_metrics["novelty"]["n_unseen"] == SAMPLE["RS_CVn"]
    assert 0 <= classifier.metadata["test_metrics"]["accuracy"] <= 1

    report = tmp_path / "report"
    varstream("evaluate", "--bundle", tmp_path / "clf", "--novelty-bundle", tmp_path / "nov",
              "--data", data, "--out", report, "--threads", 1, "--no-progress",
              "--cache-dir", tmp_path / "cache")  # fmt: skip
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["n_objects"] == sum(SAMPLE.values())
    assert (
        metrics["n_objects_classified"] + metrics["novelty"]["n_unseen"] == metrics["n_objects_with_windows"]
    )
    assert set(metrics["per_class"]) == set(classifier.class_names)
    assert 0 <= metrics["accuracy"] <= 1 and 0 <= metrics["balanced_accuracy"] <= 1
    assert set(metrics["novelty"]) >= {"p80", "p95"}
    assert metrics["period_recovery"]["n"] == metrics["n_objects_with_windows"]
    assert metrics["period_recovery"]["within_tolerance_or_alias"] > 0.5  # the LS period, found again
    for png in ("confusion_matrix.png", "energy_histogram.png", "example_windows.png"):
        assert (report / png).stat().st_size > 1000

    compare = tmp_path / "compare"
    varstream("compare-models", "--data", data, "--out", compare, "--models", "itcn", "rf",
              "--points", 100, "--epochs", 1, "--hidden", 8, "--novelty-bundle", tmp_path / "nov",
              *common)  # fmt: skip
    comparison = json.loads((compare / "comparison.json").read_text())
    assert set(comparison["models"]) == {"itcn", "rf"}
    assert comparison["models"]["itcn"]["n_objects"] == comparison["splits"]["val"]["n_objects"]
    assert set(comparison["accuracy_vs_points"]["100"]) >= {"itcn", "rf", "n_objects"}
    assert comparison["novelty"]["n_unseen"] == SAMPLE["RS_CVn"]
    assert "| itcn |" in (compare / "comparison.md").read_text()


def test_evaluate_defaults_to_the_shipped_bundle_pair(crts_sample, tmp_path, restore_torch_threads):
    """Without --bundle/--novelty-bundle the shipped CRTS pair is used, and it knows these classes well."""
    report = tmp_path / "shipped"
    varstream("evaluate", "--data", f"crts:{crts_sample}", "--out", report, "--threads", 1, "--no-progress",
              "--cache-dir", tmp_path / "cache")  # fmt: skip
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["classifier"]["name"] == "crts-itcn-supcon"
    assert metrics["novelty"]["bundle"]["name"] == "crts-itcn-knn10-pa"  # crts-itcn's head, as served
    assert metrics["n_objects_classified"] == sum(n for label, n in SAMPLE.items() if label != "RS_CVn")
    assert metrics["accuracy"] > 0.6
