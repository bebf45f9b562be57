"""`varstream demo` — what `make demo` runs — end to end on a small sample, both alert flavours."""

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


@pytest.mark.parametrize("flavour", ["ztf", "lsst"])
def test_demo_reports_a_scored_run(tmp_path, flavour, shared_data):
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
    assert report["annotated"] == 6 * 2  # at 50 and 55 points
    assert set(report["latency_seconds"]) == {"p50", "p95", "p99"} and report["latency_seconds"]["p50"] > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_objects"] == 6 and 0 <= metrics["accuracy"] <= 1
    lines = (out / "annotations.jsonl").read_text().splitlines()
    assert len(lines) == report["annotated"]
    assert all(json.loads(line)["survey"] == flavour for line in lines)
