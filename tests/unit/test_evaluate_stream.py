"""evaluate-stream: last annotation per object, truth join, metrics shaped as `varstream evaluate`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from broker.codecs import validate_annotation
from broker.errors import ConfigError
from broker.offline.evaluate_stream import (
    TopicSnapshot,
    last_per_object,
    latency_seconds,
    read_truth,
    stream_metrics,
)
from models.evaluate import write_report

CLASSES = ["EW", "RRab"]
TRUTH_CSV = """\
objectId,archive_id,class,period,n_points,first_mjd,last_mjd
A,a,EW,0.40,10,1.0,9.0
B,b,RRab,0.55,10,1.0,9.0
C,c,RRab,0.60,10,1.0,9.0
D,d,Mira,300.0,10,1.0,9.0
E,e,EW,,10,1.0,9.0
"""


def annotation(
    object_id, alert_id, mjd, predicted, *, percentile=10.0, novel=False, at=1_000, sent=500, period=1.0
):
    probabilities = [0.9, 0.1] if predicted == "EW" else [0.2, 0.8]
    record = {
        "objectId": object_id,
        "alertId": alert_id,
        "survey": "ztf",
        "mjd": mjd,
        "n_points": 50,
        "bands": ["r"],
        "baseline_days": 100.0,
        "period_days": period,
        "period_power": 0.5,
        "period_significance": 0.01,
        "class_names": CLASSES,
        "probabilities": probabilities,
        "predicted_class": predicted,
        "predicted_probability": max(probabilities),
        "novelty_energy": percentile / 10.0,
        "novelty_percentile": percentile,
        "is_novel": novel,
        "model_name": "itcn-crts",
        "model_version": "1",
        "novelty_model_name": "aegmm-crts",
        "novelty_model_version": "1",
        "windows_used": 1,
        "alert_timestamp_ms": sent,
        "annotated_at_ms": at,
        "schema_version": "1.0",
    }
    validate_annotation(record)
    return record


@pytest.fixture
def truth(tmp_path):
    path = tmp_path / "truth.csv"
    path.write_text(TRUTH_CSV)
    return read_truth(path)


def test_the_last_annotation_wins_by_mjd_then_annotation_time():
    records = [
        annotation("A", "1", 5.0, "RRab", at=100),
        annotation("A", "2", 7.0, "EW", at=50),
        annotation("A", "2", 7.0, "RRab", at=40),  # a duplicate answer for alert 2, made earlier
        annotation("B", "3", 2.0, "EW"),
    ]
    last = last_per_object(records)
    assert last["A"]["predicted_class"] == "EW" and last["A"]["annotated_at_ms"] == 50
    assert last["B"]["alertId"] == "3"


def test_latency_percentiles_in_seconds():
    records = [annotation("A", str(k), 1.0, "EW", sent=1_000, at=1_000 + 10 * k) for k in range(1, 101)]
    latency = latency_seconds(records)
    assert latency["n"] == 100 and latency["max"] == pytest.approx(1.0)
    assert latency["p50"] == pytest.approx(np.percentile(np.arange(1, 101) / 100, 50))
    assert latency["p99"] == pytest.approx(np.percentile(np.arange(1, 101) / 100, 99))
    assert math.isnan(latency_seconds([])["p50"])


def test_metrics_against_the_truth(truth, tmp_path):
    records = [
        annotation("A", "1", 3.0, "RRab", period=0.4),  # superseded by the later one
        annotation("A", "2", 8.0, "EW", period=0.4),  # right, period within 1%
        annotation("A", "2", 8.0, "EW", period=0.4, at=2_000),  # duplicate of alert 2
        annotation("B", "3", 8.0, "RRab", period=1.1),  # right, period doubled
        annotation("C", "4", 8.0, "EW", percentile=85.0, novel=True, period=0.3),  # wrong, half period
        annotation("D", "5", 8.0, "RRab", percentile=97.0, novel=True, period=5.0),  # unseen class, flagged
        annotation("Z", "6", 8.0, "EW"),  # not in the truth
    ]
    metrics, energies = stream_metrics(TopicSnapshot(records=records, undecodable={"undecodable": 2}), truth)
    assert metrics["classifier"] == {"name": "itcn-crts", "version": "1"}
    assert metrics["n_objects"] == 5 and metrics["n_objects_annotated"] == 4
    assert metrics["n_objects_classified"] == 3 and metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["balanced_accuracy"] == pytest.approx((1.0 + 0.5) / 2)
    assert metrics["per_class"]["RRab"]["recall"] == pytest.approx(0.5)
    assert metrics["confusion_matrix"] == {"labels": CLASSES, "matrix": [[1, 0], [1, 1]]}
    assert metrics["skipped"] == {"not_annotated": 1}  # E
    novelty = metrics["novelty"]
    assert (novelty["n_seen"], novelty["n_unseen"], novelty["unseen_classes"]) == (3, 1, ["Mira"])
    assert novelty["p80"]["n_flagged"] == 2 and novelty["p80"]["precision"] == pytest.approx(0.5)
    assert novelty["p95"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "threshold": 95.0, "n_flagged": 1}
    assert novelty["is_novel"]["n_flagged"] == 2 and novelty["is_novel"]["recall"] == 1.0
    recovery = metrics["period_recovery"]
    assert recovery["n"] == 4 and recovery["within_tolerance"] == pytest.approx(0.25)
    assert recovery["within_tolerance_or_alias"] == pytest.approx(0.75)
    assert metrics["counts"] == {
        "objects_in_truth": 5,
        "objects_annotated": 4,
        "objects_annotated_not_in_truth": 1,
        "objects_known_class": 3,
        "annotations": 7,
        "duplicate_annotations": 1,
        "undecodable_records": {"undecodable": 2},
    }
    assert metrics["latency_seconds"]["p50"] == pytest.approx(0.5)
    assert len(energies["unseen"]) == 1 and len(energies["seen"]) == 3
    written = write_report(tmp_path / "report", metrics, energies["seen"], energies["unseen"])
    assert json.loads(written[0].read_text())["accuracy"] == pytest.approx(2 / 3)


def test_truth_files_are_checked(tmp_path):
    bad = tmp_path / "truth.csv"
    bad.write_text("objectId,class\nA,EW\n")
    with pytest.raises(ConfigError, match=r"truth.csv, line 1: truth file lacks columns \['period'\]"):
        read_truth(bad)
    bad.write_text(TRUTH_CSV + "A,a,EW,0.4,1,1,1\n")
    with pytest.raises(ConfigError, match="line 7: objectId 'A' appears twice"):
        read_truth(bad)
    bad.write_text(TRUTH_CSV.replace("0.55", "long"))
    with pytest.raises(ConfigError, match="line 3: period 'long' is not a number"):
        read_truth(bad)
