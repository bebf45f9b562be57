"""broker.offline.generate: cadences, generated objects, CRTS files read back by models.data, period
checks."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from broker.errors import ConfigError
from broker.offline.generate import (
    SURVEYS,
    CadenceSpec,
    check_generated,
    generate_lightcurves,
    make_times,
    search_and_fold,
    write_crts,
    write_csv,
)
from broker.offline.truth import TRUTH_COLUMNS, read_truth, truth_row, write_truth
from models.data import read_crts
from models.lightcurve import LabelledLightCurve, LightCurve
from tests.unit.test_pelsvae import one_thread, small_bundle  # noqa: F401 (autouse fixture)


def test_regular_and_random_cadences():
    rng = np.random.default_rng(0)
    regular = make_times(CadenceSpec("regular", n_points=50, step_days=0.5, start_mjd=100.0), rng)
    assert len(regular) == 50 and np.allclose(np.diff(regular), 0.5) and regular[0] == 100.0
    random = make_times(CadenceSpec("random", n_points=300, baseline_days=200.0), rng)
    assert len(random) == 300 and (np.diff(random) >= 0).all() and np.ptp(random) <= 200.0


def test_lightcurve_cadence_reuses_real_times():
    pool = (np.array([5.0, 1.0, 3.0]), np.array([10.0, 11.0, 12.0, 13.0]))
    times = make_times(CadenceSpec("lightcurve", n_points=None, times_pool=pool), np.random.default_rng(1))
    assert any(np.array_equal(times, np.sort(p)) for p in pool)


@pytest.mark.parametrize("name", sorted(SURVEYS))
def test_survey_cadence_has_seasons_nights_and_visits(name):
    survey = SURVEYS[name]
    times = make_times(CadenceSpec(name, n_points=None, years=3.0), np.random.default_rng(2))
    gaps = np.diff(times)
    assert (gaps >= 0).all() and len(times) > 100
    assert np.ptp(times) < 3 * 365.25
    assert (gaps > 365.25 - survey.season_days - 1).sum() == 2  # two gaps between three seasons
    nights = np.floor(times + 0.5)
    per_night = np.unique(nights, return_counts=True)[1]
    assert per_night.max() <= survey.visits_per_night and np.mean(per_night == survey.visits_per_night) > 0.9
    within = gaps[gaps < 0.5]  # visits of one night: minutes to hours apart
    assert len(within) and np.median(within) == pytest.approx(survey.visit_gap_hours / 24, rel=0.3)
    between = gaps[(gaps >= 0.5) & (gaps < 100)]  # nights inside a season: about the revisit time
    assert np.mean(between) == pytest.approx(survey.revisit_days / (1 - survey.night_loss), rel=0.35)
    capped = make_times(CadenceSpec(name, n_points=40, years=3.0), np.random.default_rng(2))
    assert np.array_equal(capped, times[:40])


def test_bad_cadences_are_refused():
    with pytest.raises(ConfigError, match="unknown cadence"):
        CadenceSpec("hourly")
    with pytest.raises(ConfigError, match="n_points"):
        CadenceSpec("random", n_points=1)
    with pytest.raises(ConfigError, match="lightcurve"):
        CadenceSpec("lightcurve", n_points=None)
    with pytest.raises(ConfigError, match="gave 1 points"):
        make_times(
            CadenceSpec("lightcurve", n_points=None, times_pool=(np.array([3.0]),)), np.random.default_rng()
        )


def test_generated_objects_carry_their_truth():
    bundle = small_bundle()
    objects = generate_lightcurves(bundle, ["RRab", "EW"], 3, CadenceSpec("random", n_points=80), seed=4)
    assert [o.label for o in objects] == ["RRab"] * 3 + ["EW"] * 3
    assert len({o.object_id for o in objects}) == 6 and all("-" not in o.object_id for o in objects)
    for obj in objects:
        assert len(obj.lightcurve) == 80 and (np.diff(obj.lightcurve.mjd) >= 0).all()
        assert obj.period == pytest.approx(10 ** obj.extra["log10_period"])
    fixed = generate_lightcurves(bundle, ["EW"], 2, CadenceSpec("random", n_points=30), period=1.25)
    assert all(o.period == pytest.approx(1.25) for o in fixed)
    with pytest.raises(ConfigError, match="not known"):
        generate_lightcurves(bundle, ["Mira"], 1, CadenceSpec("random", n_points=30))


def test_crts_files_are_read_back_by_models_data(tmp_path):
    objects = generate_lightcurves(
        small_bundle(), ["RRab", "EW"], 2, CadenceSpec("random", n_points=60), seed=1
    )
    paths = write_crts(objects, tmp_path / "lc")
    assert sorted(p.name for p in paths) == sorted(f"{o.object_id}-{o.label}.csv" for o in objects)
    back = {o.object_id: o for o in read_crts(tmp_path / "lc")}
    for obj in objects:
        got = back[obj.object_id]
        assert got.label == obj.label and len(got.lightcurve) == 60
        assert np.allclose(got.lightcurve.mjd, obj.lightcurve.mjd, atol=1e-6)
        assert np.allclose(got.lightcurve.mag, obj.lightcurve.mag, atol=1e-4)
    write_truth(tmp_path / "truth.csv", (truth_row(obj) for obj in objects))
    truth = list(csv.DictReader((tmp_path / "truth.csv").open()))
    assert tuple(truth[0]) == TRUTH_COLUMNS and len(truth) == 4
    assert float(truth[0]["period"]) == pytest.approx(objects[0].period, rel=1e-6)
    assert truth[0]["objectId"] == truth[0]["archive_id"] == objects[0].object_id
    assert float(truth[0]["log10_period"]) == pytest.approx(objects[0].extra["log10_period"], abs=1e-6)
    assert truth[0]["cadence"] == "random" and truth[0]["ra"]
    back = read_truth(tmp_path / "truth.csv")  # what evaluate-stream reads, replay's truth files too
    assert back[objects[0].object_id]["class"] == objects[0].label
    rows = list(csv.DictReader(write_csv(objects, tmp_path / "all.csv").open()))
    assert len(rows) == 4 * 60 and set(rows[0]) == {"id", "class", "mjd", "mag", "magerr", "band"}


def test_period_check_with_the_plugins_search():
    rng = np.random.default_rng(0)
    objects = []
    for i, period in enumerate([0.37, 0.61, 2.3]):
        t = np.sort(rng.uniform(0, 800, 250))
        mag = 15 + 0.3 * np.sin(2 * np.pi * t / period) + 0.02 * rng.standard_normal(250)
        lc = LightCurve.from_arrays(t, mag, np.full(250, 0.02))
        objects.append(LabelledLightCurve(f"S{i}", "RRab", lc, period))
    searched = search_and_fold(objects)
    report = check_generated(searched)
    assert report["per_class"]["RRab"]["period_within_tolerance"] == 1.0
    assert len(searched.windows) == 6  # 250 points each: one window of 200 plus the last 200
