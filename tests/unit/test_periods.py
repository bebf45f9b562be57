"""`varstream periods`: the plugin's period search on an archive (real OGLE-IV Cepheids, CSV); errors."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from broker.cli import main as varstream
from broker.offline.periods import PERIODS_COLUMNS, match_kind, summarise


def test_match_kinds():
    assert match_kind(3.01, 3.0) == "exact"
    assert match_kind(6.0, 3.0) == "double" and match_kind(1.5, 3.0) == "half"
    assert match_kind(2.0, 3.0) == "other"
    assert match_kind(3.0, None) == "" and match_kind(math.nan, 3.0) == ""


def test_a_skipped_search_counts_as_a_miss():
    rows = [
        {"class": "A", "period_days": 1.0, "catalogue_period_days": 1.0, "skip_reason": ""},
        {
            "class": "A",
            "period_days": math.nan,
            "catalogue_period_days": 2.0,
            "skip_reason": "too_few_points",
        },
        {"class": "B", "period_days": 4.0, "catalogue_period_days": 2.0, "skip_reason": ""},
        {"class": "B", "period_days": 4.0, "catalogue_period_days": "", "skip_reason": ""},
    ]
    summary = summarise(rows)
    assert summary["n"] == 4 and summary["n_searched"] == 3 and summary["skipped"] == {"too_few_points": 1}
    assert summary["n_with_catalogue_period"] == 3
    assert summary["within_1pct"] == pytest.approx(1 / 3)
    assert summary["within_1pct_or_alias"] == pytest.approx(2 / 3)
    assert summary["by_class"]["A"]["within_1pct"] == pytest.approx(0.5)
    assert summary["by_class"]["B"]["double"] == pytest.approx(1.0)


def test_periods_on_the_real_ogle_folder(tmp_path, shared_data):
    out = tmp_path / "out"
    argv = ["periods", "--data", f"ogle:{shared_data / 'ogle_lmc_cepheids'}", "--bands", "I,V",
            "--label", "type_subtype", "--limit", "24", "--plots", "2", "--out", str(out),
            "--no-progress"]  # fmt: skip
    assert varstream(argv) == 0
    rows = list(csv.DictReader((out / "periods.csv").open()))
    assert len(rows) == 24 and tuple(rows[0]) == PERIODS_COLUMNS
    assert all(r["bands"] in ("I", "IV") and int(r["n_points"]) > 0 for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 24 and summary["period_search"]["min_period_days"] > 0
    f_mode = [r for r in rows if r["class"] == "Cep_F"]
    assert summary["by_class"]["Cep_F"]["n"] == len(f_mode) > 0
    # F-mode Cepheids are strong, well-sampled pulsators: the plugin's search finds their OGLE period
    assert summary["by_class"]["Cep_F"]["within_1pct"] >= 0.9
    found = np.array([float(r["period_days"]) for r in f_mode])
    catalogue = np.array([float(r["catalogue_period_days"]) for r in f_mode])
    assert np.median(np.abs(found / catalogue - 1)) < 1e-3
    plots = sorted((out / "plots").glob("*.png"))
    assert len(plots) == 2 and all(p.read_bytes()[:4] == b"\x89PNG" for p in plots)


def test_a_multiband_csv_without_periods_has_no_recovery(tmp_path):
    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(0, 400, 150)) + 58000
    with (tmp_path / "star.csv").open("w") as handle:
        handle.write("mjd,mag,err,band\n")
        for k, x in enumerate(t):
            band = "gr"[k % 2]
            handle.write(f"{x},{15 + 0.3 * np.sin(2 * np.pi * x / 0.61) + (band == 'g') * 0.5},0.02,{band}\n")
    out = tmp_path / "out"
    argv = ["periods", "--data", f"csv:{tmp_path / 'star.csv'}", "--time-col", "mjd", "--mag-col", "mag",
            "--err-col", "err", "--band-col", "band", "--out", str(out), "--no-progress"]  # fmt: skip
    assert varstream(argv) == 0
    (row,) = csv.DictReader((out / "periods.csv").open())
    assert row["bands"] == "gr" and float(row["period_days"]) == pytest.approx(0.61, rel=1e-3)
    assert "within_1pct" not in json.loads((out / "summary.json").read_text())


def test_bad_paths_and_columns_are_clear_errors(tmp_path, capsys):
    assert varstream(["periods", "--data", f"ogle:{tmp_path / 'nowhere'}", "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "a.csv").write_text("t,m,e\n1,2,0.1\n")
    argv = ["periods", "--data", f"csv:{tmp_path / 'a.csv'}", "--time-col", "MJD", "--mag-col", "m",
            "--err-col", "e", "--out", str(tmp_path / "o")]  # fmt: skip
    assert varstream(argv) == 2
    assert "no column(s) ['MJD']" in capsys.readouterr().err
    assert varstream(["periods", "--data", f"crts:{tmp_path}", "--bands", "I", "--out", str(tmp_path)]) == 2
    assert "apply to none" in capsys.readouterr().err
