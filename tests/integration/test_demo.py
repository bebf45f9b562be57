"""`varstream demo` — what `make demo` runs — end to end on a small sample, both alert flavours.

ZTF alerts from the shipped CRTS tarball, LSST alerts from a user's own CRTS files: a demo run takes ~30 s
(its own broker, the archive read, the plugin), so the two flavours share two runs instead of three."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.plugin import REPO

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

REPORT_KEYS = {
    "alerts_in",
    "annotated",
    "skipped",
    "dead_lettered",
    "classes",
    "novel",
    "latency_seconds",
    "throughput_alerts_per_s",
}


def test_demo_reports_a_scored_run(tmp_path, shared_data):
    flavour = "ztf"
    out = tmp_path / "OUT"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "broker",
            "demo",
            "--out",
            str(out),
            "--limit",
            "6",
            "--max-points",
            "60",
            "--rate",
            "0",
            "--flavour",
            flavour,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads((out / "demo-report.json").read_text())
    assert set(report) >= REPORT_KEYS
    assert report["alerts_in"] == 6 * 60 and report["accounting_holds"]
    assert (
        report["annotated"] + sum(report["skipped"].values()) + report["dead_lettered"] == report["alerts_in"]
    )
    # answered at 50 and 55 points at most; the sample holds classes never trained on (RS_CVn, Hump), and
    # an object the search finds non-periodic is skipped with that reason instead
    assert 6 <= report["annotated"] <= 6 * 2
    assert set(report["skipped"]) <= {"too_few_points", "not_enough_new_points", "non_periodic"}
    assert set(report["latency_seconds"]) == {"p50", "p95", "p99"} and report["latency_seconds"]["p50"] > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_objects"] == 6 and 0 <= metrics["accuracy"] <= 1
    lines = (out / "annotations.jsonl").read_text().splitlines()
    assert len(lines) == report["annotated"]
    assert all(json.loads(line)["survey"] == flavour for line in lines)


def test_demo_on_the_users_own_crts_files(tmp_path, shared_data):
    """CRTS files of the user's (<ID>-<CLASS>.csv, not the shipped tarball), as LSST alerts: only the
    objects the bundle trained or tuned on are left out; its test split and classes it never saw are
    replayed and scored."""
    from broker.offline.generate import write_crts
    from models.bundle import DEFAULT_CLASSIFIER_BUNDLE, load_bundle
    from models.data import read_crts

    split = load_bundle(DEFAULT_CLASSIFIER_BUNDLE).metadata["data"]["split"]
    train, test = set(split["train_ids"]), set(split["test_ids"])
    objects = read_crts(shared_data / "crts_kvmu" / "raw-lc_17-05-2017_1615.tar.xz")
    picks = (
        [o for o in objects if o.object_id in test][:3]
        + [o for o in objects if o.object_id in train][:2]
        + [o for o in objects if o.label == "RS_CVn"][:1]
    )
    folder = tmp_path / "my_crts"
    write_crts(picks, folder)
    out = tmp_path / "OUT"
    argv = ["demo", "--data", f"crts:{folder}", "--out", str(out), "--limit", "10", "--max-points", "60",
            "--rate", "0", "--flavour", "lsst"]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "broker", *argv], cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "2 of 6 objects left out" in result.stdout
    report = json.loads((out / "demo-report.json").read_text())
    assert report["alerts_in"] == 4 * 60 and report["accounting_holds"] and report["dead_lettered"] == 0
    truth = (out / "truth.csv").read_text()
    assert all(o.object_id in truth for o in picks[:3] + picks[5:])
    assert not any(o.object_id in truth for o in picks[3:5])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_objects"] == 4 and metrics["counts"]["objects_in_truth"] == 4
    # at 60 points an object may still be skipped (counted in the report); the others are answered
    assert metrics["n_objects_annotated"] >= 3 and metrics["counts"]["objects_annotated_not_in_truth"] == 0
    lines = (out / "annotations.jsonl").read_text().splitlines()
    assert len(lines) == report["annotated"] and all(json.loads(line)["survey"] == "lsst" for line in lines)
    assert report["latency_seconds"]["p50"] > 0
