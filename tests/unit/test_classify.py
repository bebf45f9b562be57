"""The science step of a batch, with the real period search, folding and a shipped bundle."""

import numpy as np
import pytest

from broker.classify import Snapshot, classify_snapshots, warm_up
from broker.config import InferenceConfig
from broker.outcomes import Annotated, Skipped
from broker.runtime import InferenceRuntime
from models.lightcurve import LightCurve


@pytest.fixture(scope="module")
def runtime():
    return InferenceRuntime(InferenceConfig(device="cpu"))


def sinusoid(n, period, seed=0):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 400, n))
    mag = 15 + 0.4 * np.sin(2 * np.pi * t / period) + rng.normal(0, 0.02, n)
    return LightCurve.from_arrays(t, mag, np.full(n, 0.02), "g")


def test_one_outcome_per_snapshot_in_order(runtime):
    flat = LightCurve.from_arrays(np.arange(60.0), np.full(60, 15.0), np.full(60, 0.02), "g")
    short = sinusoid(30, 0.7)  # period found, but below the 50-point minimum window
    snaps = [
        Snapshot("p1", sinusoid(250, 0.613)),
        Snapshot("flat", flat),
        Snapshot("short", short),
        Snapshot("p2", sinusoid(120, 3.3, seed=1)),
    ]
    out = classify_snapshots(snaps, runtime)
    assert [type(o) for o in out] == [Annotated, Skipped, Skipped, Annotated]
    assert [out[1].reason, out[2].reason] == ["non_periodic", "no_window"]
    for o, period, windows in ((out[0], 0.613, 2), (out[3], 3.3, 1)):
        assert o.period.period_days == pytest.approx(period, rel=0.01)
        c = o.classification
        assert c.windows_used == windows
        assert c.proba.shape == (len(runtime.class_names),) and c.proba.sum() == pytest.approx(1.0)
        assert np.isfinite(c.novelty_energy) and 0 <= c.novelty_percentile <= 100
        assert c.is_novel == (c.novelty_percentile > runtime.config.novelty_percentile)


def test_insignificant_periods_are_skipped(runtime):
    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(0, 400, 80))
    noise = LightCurve.from_arrays(t, 15 + rng.normal(0, 0.05, 80), np.full(80, 0.05), "g")
    (out,) = classify_snapshots([Snapshot("n", noise)], runtime, max_false_alarm_probability=1e-6)
    assert out == Skipped("non_periodic", out.period) and out.period.false_alarm_probability > 1e-6


def test_windows_of_an_object_are_averaged(runtime):
    lc = sinusoid(400, 0.9)  # two full windows
    (whole,) = classify_snapshots([Snapshot("o", lc)], runtime)
    from broker.folding import make_windows

    w = make_windows(lc, whole.period.fold_period_days, "o", None, runtime.window_config)
    per_window = runtime.classifier.predict(w).proba
    np.testing.assert_allclose(whole.classification.proba, per_window.mean(axis=0), rtol=1e-6)


def test_warm_up_runs_the_whole_science_step_on_both_synthetic_curves(runtime):
    seconds, annotated = warm_up(runtime, period_threads=2)
    assert annotated == 2  # period search, folding and inference all ran (a long and a young curve)
    assert 0 < seconds < 60
