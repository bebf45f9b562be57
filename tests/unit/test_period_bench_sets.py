"""The period bench's set helpers: sparse subsampling per band and recovery per catalogue quality."""

from __future__ import annotations

import numpy as np

from benchmarks.period_bench import _by_quality, chosen_or_runner_up, recovery, sparse_multiband
from models.lightcurve import LabelledLightCurve, LightCurve


def _object(i: int, quality: float | None, n_per_band: int = 80) -> LabelledLightCurve:
    t = np.arange(2 * n_per_band, dtype=float) * 1.1
    bands = np.array(["B", "R"] * n_per_band, dtype=object)
    lc = LightCurve.from_arrays(t, np.sin(t), np.full(len(t), 0.01), bands)
    extra = {} if quality is None else {"quality": quality}
    return LabelledLightCurve(f"obj{i}", "rr_lyrae", lc, 0.5, extra)


def test_sparse_subsampling_keeps_at_most_n_epochs_per_band_and_the_catalogue_fields():
    objects = [_object(0, 2.0), _object(1, 0.0, n_per_band=30)]
    sparse = sparse_multiband(objects, per_band=50)
    counts = [{b: int(np.sum(o.lightcurve.band == b)) for b in ("B", "R")} for o in sparse]
    assert counts == [{"B": 50, "R": 50}, {"B": 30, "R": 30}]
    assert [o.extra["quality"] for o in sparse] == [2.0, 0.0]
    assert all(np.all(np.diff(o.lightcurve.mjd) > 0) for o in sparse)


def test_recovery_is_reported_per_quality_value():
    objects = [_object(i, q) for i, q in enumerate((0.0, 0.0, 2.0, 2.0))]
    true = np.full(4, 0.5)
    found = np.array([0.5, 1 / (1 / 0.5 - 1.0), 0.5, 0.5 * 1.003])  # one daily alias among quality 0
    table = _by_quality(objects, found, true)["recovery_ours_by_quality"]
    assert table["0"]["n"] == 2 and table["0"]["within_1pct"] == 0.5 and table["0"]["daily_alias"] == 0.5
    assert table["2"] == recovery(found[2:], true[2:]) and table["2"]["within_1pct"] == 1.0


def test_sets_without_a_quality_column_get_no_quality_table():
    assert _by_quality([_object(0, None)], np.array([0.5]), np.array([0.5])) == {}


def test_chosen_or_runner_up_counts_either_period_and_a_missing_runner_up_as_no_match():
    true = np.full(4, 2.0)
    found = np.array([2.0, 1.0, 1.0, 1.0])  # right; then half the period three times
    runner_up = np.array([np.nan, 2.01, np.nan, 3.0])  # the truth as runner-up once (within 1%)
    assert chosen_or_runner_up(found, runner_up, true) == 0.5
    assert np.isnan(chosen_or_runner_up(found[:0], runner_up[:0], true[:0]))
