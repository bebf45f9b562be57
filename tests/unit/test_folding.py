"""Phase-folded windows: shapes, the cutting policy, the wrap-around Δφ and per-window standardisation."""

from __future__ import annotations

import numpy as np
import pytest

from broker.folding import (
    FoldingError,
    WindowConfig,
    fold_window,
    make_windows,
    make_windows_batch,
    window_slices,
)
from models.lightcurve import LightCurve
from models.windows import Windows

CONFIG = WindowConfig()


def lightcurve(n: int, period: float = 0.61, seed: int = 0, band=None) -> LightCurve:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(53000.0, 56000.0, n))
    mag = 15.0 + 0.4 * np.sin(2 * np.pi * t / period) + rng.normal(0, 0.02, n)
    return LightCurve.from_arrays(t, mag, rng.uniform(0.01, 0.05, n), band)


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (40, []),
        (49, []),
        (50, [(0, 50)]),
        (120, [(20, 120)]),
        (199, [(49, 199)]),
        (200, [(0, 200)]),
        (249, [(0, 200)]),  # remainder 49 < 50: no extra window
        (250, [(0, 200), (50, 250)]),
        (400, [(0, 200), (200, 400)]),
        (546, [(0, 200), (200, 400), (346, 546)]),
    ],
)
def test_cutting_policy(n, expected):
    assert [(s.start, s.stop) for s in window_slices(n, CONFIG)] == expected


@pytest.mark.parametrize(("n", "expected"), [(49, []), (50, [(0, 50)]), (120, [(0, 120)]), (199, [(0, 199)]),
                                           (250, [(0, 200), (50, 250)])])  # fmt: skip
def test_a_short_curve_keeps_every_point_with_short_window_all(n, expected):
    """Under L points, one window of all of them; from L points on, the same policy as "bucket"."""
    config = WindowConfig(short_window="all")
    assert [(s.start, s.stop) for s in window_slices(n, config)] == expected
    windows = make_windows(lightcurve(max(n, 1)), 0.61, "o", None, config)
    assert [int(length) for length in windows.lengths] == [s[1] - s[0] for s in expected]


def test_short_window_is_checked():
    assert WindowConfig().short_window == "bucket"  # bundles that do not record it: the first policy
    with pytest.raises(FoldingError, match="short_window"):
        WindowConfig(short_window="longest")


def test_shapes_padding_and_metadata():
    windows = make_windows(lightcurve(546), 0.61, "obj-1", "RRab", CONFIG)
    assert isinstance(windows, Windows)
    assert windows.x.shape == (3, 200, 3) and windows.x.dtype == np.float32
    assert windows.aux.shape == (3, 3) and list(windows.lengths) == [200, 200, 200]
    assert list(windows.object_ids) == ["obj-1"] * 3 and list(windows.labels) == ["RRab"] * 3
    short = make_windows(lightcurve(120), 0.61, "obj-2", None, CONFIG)
    assert list(short.lengths) == [100] and short.labels is None
    assert np.all(short.x[0, 100:] == 0.0) and np.all(short.x[0, :100, 0] >= 0.0)
    none = make_windows(lightcurve(30), 0.61, "obj-3", "EW", CONFIG)
    assert len(none) == 0 and none.x.shape == (0, 200, 3) and none.labels is not None


def test_short_window_uses_the_most_recent_points():
    lc = lightcurve(120)
    windows = make_windows(lc, 0.61, "x", None, CONFIG)
    recent = lc.select(slice(20, 120))
    expected, _ = fold_window(recent.mjd, recent.mag, recent.magerr, 0.61)
    np.testing.assert_array_equal(windows.x[0, :100], expected)


def test_folded_steps_are_sorted_by_phase_and_dphase_wraps_to_one():
    lc = lightcurve(200, period=0.61)
    period = 0.61
    steps, _ = fold_window(lc.mjd, lc.mag, lc.magerr, period)
    dphase = steps[:, 0].astype(np.float64)
    assert np.all(dphase >= 0) and dphase.sum() == pytest.approx(1.0, abs=1e-5)
    phase = ((lc.mjd - lc.mjd[0]) / period) % 1.0
    np.testing.assert_allclose(np.cumsum(dphase[1:]), np.sort(phase)[1:] - np.sort(phase)[0], atol=1e-5)
    # folding at the true period gives a smooth curve: neighbouring standardised mags stay close
    assert np.median(np.abs(np.diff(steps[:, 1]))) < 0.2


def test_cyclic_shift_is_a_valid_window_from_another_start():
    """Rolling the sequence equals folding with a different phase origin: Δφ is origin-free."""
    lc = lightcurve(200)
    steps, _ = fold_window(lc.mjd, lc.mag, lc.magerr, 0.61)
    shift = 37
    rolled = np.roll(steps, -shift, axis=0)
    assert rolled[:, 0].sum() == pytest.approx(1.0, abs=1e-5)
    phase = ((lc.mjd - lc.mjd[0]) / 0.61) % 1.0
    origin = np.sort(phase)[shift]
    moved = np.sort((phase - origin) % 1.0)
    np.testing.assert_allclose(rolled[1:, 0], np.diff(moved), atol=1e-5)


def test_standardisation_and_aux():
    lc = lightcurve(200)
    steps, aux = fold_window(lc.mjd, lc.mag, lc.magerr, 0.61)
    assert steps[:, 1].mean() == pytest.approx(0.0, abs=1e-5) and steps[:, 1].std() == pytest.approx(
        1.0, abs=1e-5
    )
    assert aux[0] == pytest.approx(lc.mag.mean(), rel=1e-6) and aux[1] == pytest.approx(
        lc.mag.std(), rel=1e-5
    )
    assert aux[2] == pytest.approx(np.log10(0.61))
    np.testing.assert_allclose(np.sort(steps[:, 2]), np.sort(lc.magerr / lc.mag.std()), rtol=1e-5)
    flat = LightCurve.from_arrays(np.arange(60.0), np.full(60, 15.0), np.full(60, 0.01))
    flat_steps, flat_aux = fold_window(flat.mjd, flat.mag, flat.magerr, 3.3)
    assert (
        flat_aux[1] == pytest.approx(1e-3)
        and np.all(flat_steps[:, 1] == 0)
        and np.all(flat_steps[:, 2] == 10)
    )


def test_multiband_is_centred_before_folding():
    rng = np.random.default_rng(4)
    t = np.sort(rng.uniform(0, 1000, 300))
    band = np.where(np.arange(300) % 3 == 0, "R", "B").astype(object)
    base = 0.3 * np.sin(2 * np.pi * t / 2.2)
    lc = LightCurve.from_arrays(t, 18.0 + base + np.where(band == "R", -1.5, 0.0), np.full(300, 0.02), band)
    windows = make_windows(lc, 2.2, "two-band", None, CONFIG)
    single = make_windows(
        LightCurve.from_arrays(t, 18.0 + base, np.full(300, 0.02)), 2.2, "one", None, CONFIG
    )
    np.testing.assert_array_equal(windows.x[..., 0], single.x[..., 0])
    # band medians of a sampled sinusoid differ by a few hundredths of a mag: small next to the 1.5 mag offset
    assert np.max(np.abs(windows.x[..., 1] - single.x[..., 1])) < 0.2
    assert np.max(np.abs(windows.x[..., 2] - single.x[..., 2])) < 0.01
    np.testing.assert_allclose(
        windows.aux[:, 0], single.aux[:, 0], atol=0.05
    )  # fullest band (B) keeps its level


def test_batch_stacks_in_order_and_keeps_labels():
    lcs = [lightcurve(250, seed=1), lightcurve(30, seed=2), lightcurve(120, seed=3)]
    batch = make_windows_batch(lcs, [0.61, 0.61, 1.3], ["a", "b", "c"], ["EW", None, "RRc"], CONFIG)
    assert list(batch.object_ids) == ["a", "a", "c"] and list(batch.labels) == ["EW", "EW", "RRc"]
    one = make_windows(lcs[2], 1.3, "c", "RRc", CONFIG)
    np.testing.assert_array_equal(batch.x[2], one.x[0])
    assert make_windows_batch(lcs, [0.61] * 3, ["a", "b", "c"], None, CONFIG).labels is None
    empty = make_windows_batch([lcs[1]], [1.0], ["b"], ["EW"], CONFIG)
    assert len(empty) == 0 and empty.labels is not None


def test_bad_period_and_settings_are_refused():
    with pytest.raises(FoldingError, match="nan"):
        make_windows(lightcurve(100), float("nan"), "x", None, CONFIG)
    with pytest.raises(FoldingError, match=r"-1\.0"):
        make_windows(lightcurve(100), -1.0, "x", None, CONFIG)
    assert WindowConfig(buckets=[50, 100, 150, 200]) == CONFIG  # as read back from a bundle's JSON
    with pytest.raises(FoldingError, match="buckets"):
        WindowConfig(buckets=(100, 50))
    with pytest.raises(FoldingError, match="min_length=40"):
        WindowConfig(min_length=40)
    with pytest.raises(ValueError, match="3 light curves, 2 periods"):
        make_windows_batch([lightcurve(60)] * 3, [1.0, 2.0], ["a", "b", "c"], None, CONFIG)
