"""The period search with the first bundles' science: every available engine recovers injected periods."""

from __future__ import annotations

import math

import numpy as np
import pytest

from broker.errors import ConfigError
from broker.period import (
    SKIP_CONSTANT,
    SKIP_SHORT_BASELINE,
    SKIP_TOO_FEW_POINTS,
    FrequencyGrid,
    PeriodSearchConfig,
    Series,
    available_engines,
    centre_bands,
    frequency_grid,
    resolve_engine,
    run_engine,
    search_periods,
)
from models.lightcurve import LightCurve

FAST = {"min_period_days": 0.1, "max_period_days": 100.0}  # ~10k frequencies over 200 d: tests stay fast


def survey_times(rng: np.random.Generator, n: int = 300, baseline: float = 200.0) -> np.ndarray:
    """Irregular night-time sampling with seasonal gaps: random nights, random hour within the night."""
    nights = np.sort(rng.choice(np.arange(int(baseline)), size=n, replace=True)).astype(float)
    in_season = (nights % 100) < 70  # 30-day gaps
    nights = nights[in_season]
    return np.sort(nights + rng.uniform(0.0, 0.3, len(nights)))


def sinusoid(rng, period, noise=0.05, n=300) -> LightCurve:
    t = survey_times(rng, n)
    mag = 15.0 + 0.3 * np.sin(2 * np.pi * t / period + 0.7) + rng.normal(0, noise, len(t))
    return LightCurve.from_arrays(t, mag, np.full(len(t), noise))


def eclipsing(rng, period, noise=0.02, n=300) -> LightCurve:
    """Algol-like: flat out of eclipse, a deep primary and a shallow secondary eclipse (Gaussian dips)."""
    t = survey_times(rng, n)
    phase = (t / period) % 1.0

    def dip(centre: float, depth: float, width: float) -> np.ndarray:
        return depth * np.exp(-0.5 * (((phase - centre + 0.5) % 1 - 0.5) / width) ** 2)

    mag = 14.0 + dip(0.0, 0.8, 0.04) + dip(0.5, 0.2, 0.04) + rng.normal(0, noise, len(t))
    return LightCurve.from_arrays(t, mag, np.full(len(t), noise))


@pytest.mark.parametrize("engine", available_engines())
@pytest.mark.parametrize("period", [0.3141, 2.718, 23.0])
def test_every_engine_recovers_an_injected_sinusoid(engine, period):
    lc = sinusoid(np.random.default_rng(int(period * 1000)), period)
    (result,) = search_periods([lc], PeriodSearchConfig(**FAST), engine=engine)
    assert result.searched
    assert result.period_days == pytest.approx(period, rel=0.01)
    assert 0.5 < result.power <= 1.0
    assert result.false_alarm_probability < 1e-10


@pytest.mark.parametrize("engine", available_engines())
def test_every_engine_finds_an_eclipsing_binary_or_its_half(engine):
    period = 1.37
    lc = eclipsing(np.random.default_rng(7), period)
    (result,) = search_periods([lc], PeriodSearchConfig(**FAST), engine=engine)
    # Lomb-Scargle on unequal eclipses peaks at the orbital period or its half; both fold the light curve.
    ratio = result.period_days / period
    assert min(abs(ratio - 1), abs(ratio - 0.5) / 0.5) < 0.01, result


def test_backends_agree_on_the_same_grid():
    lc = sinusoid(np.random.default_rng(1), 0.77, noise=0.1)
    t, y, dy = lc.mjd, lc.mag, lc.magerr
    series = Series(t, y, dy, FrequencyGrid(0.01, 0.001, 9000))
    powers = {name: run_engine(name, [series])[0] for name in available_engines()}
    reference = powers["astropy"]
    for name, power in powers.items():
        assert power.shape == (9000,)
        assert int(np.argmax(power)) == int(np.argmax(reference)), name
        assert np.max(np.abs(power - reference)) < 5e-3, name
    # nifty-ls in float64 matches astropy's low-rank default far more tightly than fasper does
    assert np.max(np.abs(powers["nifty-ls"] - reference)) < 1e-5


def test_batch_keeps_order_and_marks_degenerate_inputs():
    rng = np.random.default_rng(2)
    good = sinusoid(rng, 5.5)
    few = LightCurve.from_arrays([1.0, 2.0, 3.0], [15.0, 15.1, 15.0], [0.1] * 3)
    same_night = LightCurve.from_arrays(
        np.full(20, 100.0) + np.linspace(0, 0.01, 20), rng.normal(15, 0.1, 20), [0.1] * 20
    )
    flat = LightCurve.from_arrays(np.linspace(0, 100, 50), np.full(50, 15.0), np.full(50, 0.1))
    results = search_periods([few, good, same_night, flat, good], PeriodSearchConfig(**FAST))
    assert [r.skip_reason for r in results] == [
        SKIP_TOO_FEW_POINTS,
        None,
        SKIP_SHORT_BASELINE,
        SKIP_CONSTANT,
        None,
    ]
    for skipped in (results[0], results[2], results[3]):
        assert math.isnan(skipped.period_days) and skipped.false_alarm_probability == 1.0
        assert not skipped.significant()
    assert results[1] == results[4] and results[1].significant()
    assert search_periods([], PeriodSearchConfig()) == []


def test_pure_noise_is_not_significant():
    rng = np.random.default_rng(3)
    t = survey_times(rng)
    lc = LightCurve.from_arrays(t, rng.normal(15, 0.1, len(t)), np.full(len(t), 0.1))
    (result,) = search_periods([lc], PeriodSearchConfig(**FAST))
    assert result.searched and result.false_alarm_probability > 0.01 and not result.significant()


def test_grid_follows_baseline_and_oversampling():
    config = PeriodSearchConfig(min_period_days=0.1, max_period_days=1000.0, oversampling=5)
    grid, native = frequency_grid(200.0, config)
    assert native == pytest.approx(1 / 1000.0) and grid.df == native
    assert grid.f0 == pytest.approx(1 / 200.0)  # longest period capped at the baseline
    assert grid.fmax == pytest.approx(10.0, abs=native)
    capped, _ = frequency_grid(200.0, PeriodSearchConfig(min_period_days=0.1, max_frequencies=1000))
    assert capped.n == 1000 and capped.df > native and capped.fmax == pytest.approx(10.0)


def test_capped_grid_is_refined_to_the_native_step():
    period = 0.4321
    lc = sinusoid(np.random.default_rng(4), period, noise=0.02)
    full = search_periods([lc], PeriodSearchConfig(**FAST))[0]
    capped = search_periods([lc], PeriodSearchConfig(max_frequencies=2000, **FAST))[0]
    assert capped.period_days == pytest.approx(full.period_days, rel=1e-12)  # same point of the native grid
    assert 2000 < capped.n_frequencies < full.n_frequencies


def test_multiband_centring_removes_band_offsets():
    rng = np.random.default_rng(5)
    period = 3.3
    t = survey_times(rng, 400)
    band = np.where(rng.random(len(t)) < 0.6, "g", "r").astype(object)
    offset = np.where(band == "g", 0.0, -2.0)  # r is 2 mag brighter: uncentred, the bands dominate the power
    mag = 16.0 + offset + 0.2 * np.sin(2 * np.pi * t / period) + rng.normal(0, 0.03, len(t))
    lc = LightCurve.from_arrays(t, mag, np.full(len(t), 0.03), band)
    centred = centre_bands(lc)
    is_g = lc.band == "g"
    assert np.median(centred[is_g]) == pytest.approx(np.median(centred[~is_g]))
    assert np.median(centred[is_g]) == pytest.approx(np.median(lc.mag[is_g]))  # fullest band keeps its level
    (result,) = search_periods([lc], PeriodSearchConfig(**FAST))
    assert result.period_days == pytest.approx(period, rel=0.01)
    single = LightCurve.from_arrays(t, mag, np.full(len(t), 0.03))
    assert centre_bands(single) is not single.mag and np.array_equal(centre_bands(single), single.mag)


def test_unknown_engine_lists_valid_names_and_auto_resolves():
    with pytest.raises(ValueError, match=r"'cuda-magic'.*nifty-ls.*astropy-fast.*astropy.*cuda"):
        PeriodSearchConfig(backend="cuda-magic")
    with pytest.raises(ConfigError):
        resolve_engine("cuda-magic")
    assert resolve_engine("auto") in ("cuda", "nifty-ls")
    assert search_periods(
        [sinusoid(np.random.default_rng(6), 1.1)], PeriodSearchConfig(backend="auto", **FAST), engine="auto"
    )[0].searched


@pytest.mark.parametrize(
    "settings",
    [
        {"min_period_days": 0.0},
        {"min_period_days": 5.0, "max_period_days": 1.0},
        {"oversampling": 0},
        {"multiband": "stack"},
    ],
)
def test_bad_settings_are_refused(settings):
    with pytest.raises(ConfigError):
        PeriodSearchConfig(**settings)
