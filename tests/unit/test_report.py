"""`varstream report` on a generated run: the PNGs are real images and the numbers are the run's."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from broker.cli import main as cli_main
from broker.codecs.annotations import validate_annotation
from broker.errors import ArchiveError
from broker.offline.report import (
    ANNOTATIONS_FILE,
    PLOT_FILES,
    REPORT_FILE,
    build_report,
    read_annotations_file,
)

CLASSES = ["RRab", "RRc", "EA", "EB", "LPV"]
CLASS_P = [0.4, 0.2, 0.2, 0.15, 0.05]
START_MS = 1_780_000_000_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_run(n: int = 400, n_duplicates: int = 7, novelty: bool = True, seed: int = 3) -> list[dict]:
    """Annotation records of a 60 s run: log-normal latencies (a few over budget), duplicates re-sent."""
    rng = np.random.default_rng(seed)
    alert_ts = START_MS + np.sort(rng.integers(0, 60_000, size=n))
    latency_ms = np.round(rng.lognormal(np.log(1500), 0.9, size=n)).astype(int)
    latency_ms[:5] = 75_000  # over the 60 s budget
    classes = rng.choice(CLASSES, size=n, p=CLASS_P)
    energy = rng.normal(10.0, 3.0, size=n)
    records = []
    for i in range(n):
        probabilities = np.full(len(CLASSES), 0.05)
        probabilities[CLASSES.index(classes[i])] = 0.8
        records.append(
            {
                "objectId": f"ZTF24obj{i % 150:04d}",
                "alertId": str(2_700_000_000_000 + i),
                "survey": "ztf",
                "mjd": 60400.0 + i / 1000,
                "n_points": 120,
                "bands": ["g", "r"],
                "baseline_days": 800.0,
                "period_days": 0.55,
                "period_power": 0.6,
                "period_significance": 1e-8,
                "class_names": CLASSES,
                "probabilities": probabilities.tolist(),
                "predicted_class": str(classes[i]),
                "predicted_probability": 0.8,
                "novelty_energy": float(energy[i]) if novelty else None,
                "novelty_percentile": 50.0 if novelty else None,
                "is_novel": bool(energy[i] > 15.0) if novelty else None,
                "model_name": "crts-itcn",
                "model_version": "0.1.0",
                "novelty_model_name": "test-aegmm" if novelty else None,
                "novelty_model_version": "0.1.0" if novelty else None,
                "windows_used": 1,
                "alert_timestamp_ms": int(alert_ts[i]),
                "annotated_at_ms": int(alert_ts[i] + latency_ms[i]),
                "schema_version": "1.0",
            }
        )
    # at-least-once: a few annotations delivered twice (same alertId, later annotation time)
    for record in records[:n_duplicates]:
        records.append(dict(record, annotated_at_ms=record["annotated_at_ms"] + 200))
    return records


def write_run(folder: Path, records: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ANNOTATIONS_FILE).open("w") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")
    return folder


@pytest.fixture(scope="module")
def novelty_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A novelty bundle folder as far as the report reads it: metadata.json with the thresholds."""
    folder = tmp_path_factory.mktemp("test-aegmm")
    metadata = {
        "kind": "novelty",
        "name": "test-aegmm",
        "novelty": {"thresholds": {"p80": 12.5, "p95": 15.0}},
    }
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, novelty_bundle: Path) -> tuple[list[dict], dict, Path]:
    """(records, summary, output folder) of one report built on a generated run (plots take seconds)."""
    records = make_run()
    out = tmp_path_factory.mktemp("report")
    return records, build_report(records, out, novelty_bundle, source={"kind": "test"}), out


def assert_png(path: Path, width: int | None = None, height: int | None = None) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC, path
    image = matplotlib.image.imread(path)
    if width is not None:
        assert image.shape[:2] == (height, width), path
    assert image[..., :3].std() > 0.01, f"{path} looks blank"


def test_generated_records_are_valid_annotations() -> None:
    for record in make_run(n=20, n_duplicates=0) + make_run(n=5, n_duplicates=0, novelty=False):
        validate_annotation(record)


def test_report_numbers_are_the_run_s(report: tuple[list[dict], dict, Path], novelty_bundle: Path) -> None:
    records, summary, _ = report
    latency = np.array([r["annotated_at_ms"] - r["alert_timestamp_ms"] for r in records]) / 1000.0

    assert summary["n_annotations"] == 407
    assert summary["n_alerts"] == 400
    assert summary["n_duplicate_annotations"] == 7
    assert summary["n_objects"] == 150
    for q in (50, 90, 95, 99):
        assert summary["latency_s"][f"p{q}"] == pytest.approx(np.percentile(latency, q))
    assert summary["latency_s"]["within_budget_fraction"] == pytest.approx(np.mean(latency <= 60.0))
    assert summary["latency_s"]["max"] == pytest.approx(75.2)  # an over-budget one, re-sent 200 ms later
    assert summary["latency_s"]["n_negative"] == 0

    classes = [r["predicted_class"] for r in records]
    assert summary["classes"] == {name: classes.count(name) for name in summary["classes"]}
    assert sum(summary["classes"].values()) == 407
    assert list(summary["classes"].values()) == sorted(summary["classes"].values(), reverse=True)

    energies = np.array([r["novelty_energy"] for r in records])
    novelty = summary["novelty"]
    assert novelty["n_novel"] == sum(r["is_novel"] for r in records)
    assert novelty["thresholds"] == {"p80": 12.5, "p95": 15.0}
    assert novelty["thresholds_source"] == str(novelty_bundle)
    assert novelty["fraction_above_threshold"]["p95"] == pytest.approx(np.mean(energies > 15.0))
    assert novelty["energy_quantiles"]["p50"] == pytest.approx(np.median(energies))

    # 407 annotations spread over ~60 s (plus the last latencies): a few per second, peak above mean
    throughput = summary["throughput_per_s"]
    span_s = (max(r["annotated_at_ms"] for r in records) - min(r["annotated_at_ms"] for r in records)) / 1000
    assert throughput["annotations_mean"] == pytest.approx(407 / span_s)
    assert throughput["bin_s"] == 1.0
    assert throughput["annotations_peak"] >= throughput["annotations_mean"]


def test_report_writes_the_pngs_and_the_json(report: tuple[list[dict], dict, Path]) -> None:
    _, summary, out = report
    for name in PLOT_FILES:
        assert_png(out / name)
    for name in ("latency.png", "novelty_energy.png"):
        assert_png(out / name, width=800, height=450)
    assert_png(out / "throughput.png", width=800, height=600)
    written = json.loads((out / REPORT_FILE).read_text())
    assert written == json.loads(json.dumps(summary))
    assert written["plots"] == list(PLOT_FILES)
    assert written["source"] == {"kind": "test"}


def test_run_without_novelty_model(tmp_path: Path) -> None:
    summary = build_report(make_run(n=50, n_duplicates=0, novelty=False), tmp_path)
    assert summary["novelty"]["n_with_energy"] == 0
    assert summary["novelty"]["n_novel"] == 0
    assert summary["novelty"]["thresholds_source"] is None
    assert_png(tmp_path / "novelty_energy.png")


def test_command_reads_the_run_folder(tmp_path: Path, novelty_bundle: Path, capsys) -> None:
    run = write_run(tmp_path / "run", make_run())
    out = tmp_path / "report"
    argv = ["report", "--run", str(run), "--out", str(out), "--novelty-bundle", str(novelty_bundle)]
    assert cli_main(argv) == 0
    assert "407 annotations of 400 alerts" in capsys.readouterr().out
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["source"] == {"kind": "file", "path": str(run)}
    assert report["novelty"]["thresholds"] == {"p80": 12.5, "p95": 15.0}
    assert all((out / name).is_file() for name in PLOT_FILES)


def test_unreadable_input_names_the_file_and_line(tmp_path: Path) -> None:
    run = write_run(tmp_path, make_run(n=3, n_duplicates=0))
    with (run / ANNOTATIONS_FILE).open("a") as out:
        out.write("{not json\n")
    with pytest.raises(ArchiveError, match=rf"{ANNOTATIONS_FILE}:4"):
        read_annotations_file(run)


def test_record_without_timestamps_is_refused(tmp_path: Path) -> None:
    records = make_run(n=3, n_duplicates=0)
    del records[1]["annotated_at_ms"]
    with pytest.raises(ArchiveError, match=r"record 1 .*annotated_at_ms"):
        build_report(records, tmp_path)


def test_missing_run_folder_is_a_config_error(tmp_path: Path) -> None:
    assert cli_main(["report", "--run", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2


def test_a_run_scored_by_the_classifier_s_head_draws_the_head_s_thresholds(tmp_path: Path) -> None:
    """Records naming the served k-NN head (crts-itcn's, beside the shipped classifier): thresholds from
    that bundle's head section."""
    from models.bundle import DEFAULT_NOVELTY_BUNDLE, METADATA_FILE

    head = json.loads((DEFAULT_NOVELTY_BUNDLE / METADATA_FILE).read_text())["novelty_head"]
    records = make_run(n=60, n_duplicates=0)
    for record in records:
        record["novelty_model_name"] = head["name"]
        record["novelty_energy"] = abs(record["novelty_energy"]) / 20.0  # distances, 0..2
    summary = build_report(records, tmp_path)
    assert summary["novelty"]["thresholds"] == head["thresholds"]
    assert summary["novelty"]["thresholds_source"] == str(DEFAULT_NOVELTY_BUNDLE)
    assert summary["novelty"]["score"].startswith("k-NN novelty head")
    assert_png(tmp_path / "novelty_energy.png")
