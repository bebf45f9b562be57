"""Metric functions on cases small enough to compute by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.evaluate import (
    aggregate_by_object,
    classification_metrics,
    novelty_metrics,
    period_recovery,
    write_report,
)
from tests.unit.test_bundle import synthetic_windows


def test_classification_metrics_by_hand():
    # a: 3 objects, 2 right; b: 1 object, right; c: 1 object, predicted a.
    y_true = ["a", "a", "a", "b", "c"]
    y_pred = ["a", "a", "b", "b", "a"]
    m = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert m["per_class"]["a"] == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3}
    )
    assert m["per_class"]["b"] == pytest.approx(
        {"precision": 1 / 2, "recall": 1.0, "f1": 2 / 3, "support": 1}
    )
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["confusion_matrix"] == {"labels": ["a", "b", "c"], "matrix": [[2, 1, 0], [0, 1, 0], [1, 0, 0]]}


def test_classification_metrics_reject_unknown_true_labels():
    with pytest.raises(ValueError, match=r"\['z'\]"):
        classification_metrics(["a", "z"], ["a", "a"], ["a", "b"])


def test_novelty_metrics_by_hand():
    is_unseen = np.array([True, True, False, False, False])
    energy = np.array([5.0, 1.0, 4.0, 0.0, 0.0])
    m = novelty_metrics(is_unseen, energy, {"p80": 3.0, "p95": 4.5})
    # p80 flags energies 5 and 4: one unseen of two flagged, one of two unseen found.
    assert m["p80"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "threshold": 3.0, "n_flagged": 2}
    )
    # p95 flags only energy 5: precision 1, recall 1/2, F1 2/3.
    assert m["p95"]["precision"] == 1.0 and m["p95"]["recall"] == 0.5
    assert m["p95"]["f1"] == pytest.approx(2 / 3)
    assert novelty_metrics(is_unseen, energy, {"high": 99.0})["high"]["f1"] == 0.0


def test_period_recovery_counts_aliases():
    catalogue = np.array([1.0, 1.0, 1.0, 1.0, 2.0, np.nan])
    found = np.array([1.005, 2.0, 0.5, 1.5, 2.03, 1.0])
    m = period_recovery(found, catalogue, tolerance=0.01)
    assert m["n"] == 5
    assert m["within_tolerance"] == pytest.approx(1 / 5)
    assert (m["double"], m["half"]) == (pytest.approx(1 / 5), pytest.approx(1 / 5))
    assert m["within_tolerance_or_alias"] == pytest.approx(3 / 5)


def test_aggregate_by_object_means_windows_in_first_appearance_order():
    ids = np.array(["y", "x", "y", "x", "z"], dtype=object)
    proba = np.array([[1, 0], [0, 1], [0, 1], [0.5, 0.5], [1, 0]], dtype=float)
    energy = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    scores = aggregate_by_object(ids, proba, np.array(["A", "B", "A", "B", "A"], object), energy)
    assert list(scores.object_ids) == ["y", "x", "z"]
    np.testing.assert_allclose(scores.proba, [[0.5, 0.5], [0.25, 0.75], [1, 0]])
    np.testing.assert_allclose(scores.energy, [2.0, 3.0, 5.0])
    assert list(scores.n_windows) == [2, 2, 1] and list(scores.labels) == ["A", "B", "A"]
    assert list(scores.predicted(["A", "B"])) == ["A", "B", "A"]


def test_write_report_writes_metrics_and_plots(tmp_path):
    metrics = classification_metrics(["a", "b"], ["a", "a"], ["a", "b"])
    written = write_report(
        tmp_path,
        metrics,
        energy_seen=np.array([0.0, 1.0, 2.0]),
        energy_unseen=np.array([3.0, 4.0]),
        thresholds={"p80": 1.5, "p95": 2.5},
        examples=synthetic_windows(6),
    )
    assert {p.name for p in written} == {
        "metrics.json",
        "confusion_matrix.png",
        "energy_histogram.png",
        "example_windows.png",
    }
    assert json.loads((tmp_path / "metrics.json").read_text())["accuracy"] == 0.5
    assert all(p.stat().st_size > 1000 for p in written if p.suffix == ".png")


def test_novelty_section_scores_objects_by_their_mean_window_score():
    """Two known and two unseen objects, two windows each; the ranking sees each object's mean score and
    its longest window length, as the plugin does."""
    from models.evaluate import novelty_section
    from models.windows import Windows

    ids = np.array(["k1", "k1", "k2", "k2", "u1", "u1", "u2", "u2"], object)
    labels = np.array(["a", "a", "b", "b", "z", "z", "z", "z"], object)
    lengths = np.array([200, 200, 100, 100, 200, 200, 50, 50], np.int32)
    windows = Windows(np.zeros((8, 200, 3), np.float32), np.zeros((8, 3), np.float32), lengths, ids, labels)
    window_scores = np.array([0.5, 1.5, 2.0, 2.0, 9.6, 9.8, 4.0, 6.0])
    seen_lengths = []

    def percentile_of(scores, object_lengths):
        seen_lengths.append(list(object_lengths))
        return scores * 10.0

    section, seen, unseen = novelty_section(windows, window_scores, percentile_of, ["a", "b"])
    assert seen_lengths == [[200, 100, 200, 50]]
    np.testing.assert_allclose(seen, [1.0, 2.0])
    np.testing.assert_allclose(unseen, [9.7, 5.0])
    assert (section["n_seen"], section["n_unseen"], section["unseen_classes"]) == (2, 2, ["z"])
    assert section["p95"]["recall"] == 0.5 and section["p95"]["known_flagged_fraction"] == 0.0
    assert section["p80"]["n_flagged"] == 1
    assert section["roc_auc"] == 1.0


def test_novelty_section_splits_known_flagged_objects_by_their_length():
    """Known objects at 200 (one of two flagged) and at 100 points (the one flagged): rates per length."""
    from models.evaluate import novelty_section
    from models.windows import Windows

    ids = np.array(["k1", "k2", "k3", "u1"], object)
    labels = np.array(["a", "a", "b", "z"], object)
    lengths = np.array([200, 200, 120, 200], np.int32)
    windows = Windows(np.zeros((4, 200, 3), np.float32), np.zeros((4, 3), np.float32), lengths, ids, labels)
    section, _, _ = novelty_section(
        windows, np.array([9.9, 1.0, 9.7, 9.8]), lambda s, n: s * 10.0, ["a", "b"]
    )
    assert section["p95"]["known_flagged_by_length"] == {
        "100": {"n_seen": 1, "fraction": 1.0},  # 120 points: the 100 bucket
        "200": {"n_seen": 2, "fraction": 0.5},
    }


def test_novelty_section_reports_each_unseen_class_apart():
    """Two unseen classes: the one the head finds and a variant of a trained class it misses. Each gets its
    own recall and its own ROC AUC against all known objects, so one cannot hide the other."""
    from models.evaluate import novelty_section
    from models.windows import Windows

    ids = np.array(["k1", "k2", "k3", "r1", "r2", "v1", "v2"], object)
    labels = np.array(["a", "a", "b", "RS_CVn", "RS_CVn", "Blazhko", "Blazhko"], object)
    lengths = np.full(7, 200, np.int32)
    windows = Windows(np.zeros((7, 200, 3), np.float32), np.zeros((7, 3), np.float32), lengths, ids, labels)
    scores = np.array([1.0, 2.0, 8.5, 9.9, 9.0, 0.5, 1.5])
    section, _, _ = novelty_section(windows, scores, lambda s, n: s * 10.0, ["a", "b"])
    rs_cvn, blazhko = section["by_unseen_class"]["RS_CVn"], section["by_unseen_class"]["Blazhko"]
    assert (rs_cvn["n"], rs_cvn["p95_recall"]) == (2, 0.5)
    assert rs_cvn["p80_recall"] == 1.0 and rs_cvn["roc_auc"] == 1.0
    assert (blazhko["p80_recall"], blazhko["p95_recall"]) == (0.0, 0.0)
    assert blazhko["roc_auc"] == pytest.approx(1 / 6)  # above one of three known objects' scores, once
    assert section["p95"]["recall"] == 0.25  # the classes together
