"""`varstream evaluate-surveys`: the MACHO join on the real files, the table, one real survey end to end."""

from __future__ import annotations

import csv
import json
from collections import defaultdict

import numpy as np
import pytest

from broker.cli import main as varstream
from broker.errors import ArchiveError
from broker.offline.surveys import Survey, macho_labelled_csv, markdown_table, shared_surveys, summary_row
from models.taxonomy import superclass_of


def test_macho_join_labels_calibrates_and_cuts_sentinels(shared_data, tmp_path):
    path, dropped = macho_labelled_csv(shared_data / "macho_deepnets_vs_sample", tmp_path / "m.csv")
    rows = list(csv.DictReader(path.open()))
    by_object = defaultdict(list)
    for row in rows:
        by_object[row["object_id"]].append(row)
    assert len(by_object) == 15  # README: classes 1 (x6), 2, 3, 4 (x3), 7 (x2), 10 (x2)
    classes = sorted(rows_[0]["class"] for rows_ in by_object.values())
    assert classes.count("RRL_AB") == 6 and classes.count("Ceph_Fund") == 3 and classes.count("EB") == 2
    assert all(superclass_of(c) for c in classes)
    assert dropped > 0
    mags = np.array([float(r["mag"]) for r in rows])
    errors = np.array([float(r["magerr"]) for r in rows])
    # instrumental (~ -9) shifted to standard KR/KV magnitudes of LMC stars; no sentinel left
    assert 10 < np.median(mags) < 22 and mags.min() > 5
    assert np.all((errors > 0) & (errors <= 1))
    assert {r["band"] for r in rows} == {"R", "B"}
    assert all(float(r["period"]) > 0 for r in rows)


def test_unknown_survey_is_named(tmp_path):
    with pytest.raises(ArchiveError, match=r"unknown survey\(s\) \['sdss'\]"):
        shared_surveys(tmp_path, tmp_path, ["crts", "sdss"])


def test_summary_row_and_table_by_hand():
    metrics = {
        "n_objects": 10,
        "n_objects_classified": 0,
        "accuracy": float("nan"),
        "balanced_accuracy": float("nan"),
        "superclass": {
            "n": 9,
            "accuracy": 0.5,
            "balanced_accuracy": 0.25,
            "unseen_superclasses": {"RS_CVn": 1},
            "novelty": {
                "n_unseen": 1,
                "roc_auc": 0.5,
                "p95": {"recall": 1.0, "known_flagged_fraction": 0.125},
            },
        },
        "novelty": {"n_seen": 0, "n_unseen": 10, "p95": {"recall": 0.2, "n_flagged": 2}},
        "period_recovery": {"n": 4, "within_tolerance": 0.75, "double": 0.0, "half": 0.25},
    }
    row = summary_row(Survey("x", "eros:/d", note="n"), metrics)
    assert row["class_accuracy"] is None and row["superclass_accuracy"] == 0.5
    assert row["novelty_roc_auc"] is None and row["novelty_p95_recall"] == 0.2
    assert row["period_within_1pct"] == 0.75 and row["period_half"] == 0.25
    table = markdown_table([row, {"survey": "y", "error": "ArchiveError: boom"}]).splitlines()
    assert table[2].startswith(
        "| x | 10 | 0 | - | - | 9 | 0.500 | 0.250 | 1 | 0.500 | 1.000 | 0.125 "
        "| 10 | - | 0.200 | - | 0.200 | 4 | 0.750 |"
    )
    assert table[3].startswith("| y | error: ArchiveError: boom |")
    assert len({line.count("|") for line in table}) == 1  # every row has every column


def test_evaluate_surveys_on_macho_end_to_end(shared_data, tmp_path):
    out = tmp_path / "surveys"
    argv = ["evaluate-surveys", "--out", str(out), "--surveys", "macho", "--data-root", str(shared_data),
            "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    assert varstream(argv) == 0
    report = json.loads((out / "surveys.json").read_text())
    (row,) = report["surveys"]
    assert row["survey"] == "macho" and row["n_objects"] == 15
    # MACHO names no class of the CRTS bundle: every object is class-level unseen, all scored one level up
    assert row["class_n"] == 0 and row["novelty_n_unseen"] == 15
    assert row["superclass_n"] == 15 and 0 <= row["superclass_accuracy"] <= 1
    assert row["period_n"] == 15 and row["period_within_1pct"] is not None
    metrics = json.loads((out / "macho" / "metrics.json").read_text())
    section = metrics["superclass"]
    assert section["classes_of"]["Cepheid"] == ["Cep_II"]
    assert sum(map(sum, section["confusion_matrix"]["matrix"])) == 15
    assert "| macho | 15 |" in (out / "surveys.md").read_text()
    # every MACHO superclass is one the bundle knows: superclass novelty has no positives, only false alarms
    assert section["novelty"]["n_seen"] == 15 and section["novelty"]["n_unseen"] == 0
    assert row["superclass_novelty_p95_recall"] is None
    assert 0 <= row["superclass_novelty_p95_known_flagged"] <= 1


def test_test_split_names_only_known_surveys(tmp_path):
    argv = ["evaluate-surveys", "--out", str(tmp_path), "--surveys", "macho", "--test-split", "crts,sdss"]
    assert varstream(argv) != 0
    assert not (tmp_path / "surveys.json").exists()


def test_a_failing_survey_is_reported_and_the_others_still_run(shared_data, tmp_path):
    root = tmp_path / "data"  # MACHO only: the EROS-1 folder is missing
    root.mkdir()
    (root / "macho_deepnets_vs_sample").symlink_to(shared_data / "macho_deepnets_vs_sample")
    out = tmp_path / "surveys"
    argv = ["evaluate-surveys", "--out", str(out), "--surveys", "eros,macho", "--data-root", str(root),
            "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    assert varstream(argv) == 1
    eros, macho = json.loads((out / "surveys.json").read_text())["surveys"]
    assert eros["survey"] == "eros" and "eros1_ramp" in eros["error"]
    assert macho["superclass_n"] == 15 and "bad points cut" in macho["note"]
    assert "| eros | error:" in (out / "surveys.md").read_text()


def test_the_surveys_a_bundle_trained_on_are_scored_on_their_test_split_by_default(tmp_path):
    """Read from each bundle's metadata: one archive (data.format), several (data.archives), none known."""
    from broker.errors import ConfigError
    from broker.offline.commands.evaluate_surveys import trained_surveys
    from models.bundle import BUNDLES_DIR

    surveys = {"crts", "eros", "ogle", "macho"}
    assert trained_surveys(None, surveys) == {"crts"}  # the served classifier
    assert trained_surveys(BUNDLES_DIR / "crts-itcn", surveys) == {"crts"}
    assert trained_surveys(BUNDLES_DIR / "crts-eros-itcn-supcon", surveys) == {"crts", "eros"}
    (tmp_path / "metadata.json").write_text(json.dumps({"metadata": {"data": {"format": "csv"}}}))
    assert trained_surveys(tmp_path, surveys) == set()
    with pytest.raises(ConfigError, match=r"no metadata\.json"):
        trained_surveys(tmp_path / "missing", surveys)
