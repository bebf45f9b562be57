"""The new science settings: shared-period multiband search, alias-aware choice, coarse-to-fine grid."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from astropy.timeseries import LombScargleMultiband

from broker.period import FrequencyGrid, PeriodSearchConfig, search_periods
from broker.period.choice import refit_bands
from broker.period.search import periodogram
from models.lightcurve import LightCurve
from tests.unit.test_period import FAST, eclipsing, sinusoid, survey_times

V2 = PeriodSearchConfig.v2(**FAST)


def sparse_multiband(seed: int, period: float = 0.6123, per_band: int = 9) -> tuple[LightCurve, list]:
    """Three bands of `per_band` random epochs over 300 d, each with its own level, amplitude and phase."""
    rng = np.random.default_rng(seed)
    t_all, m_all, b_all, singles = [], [], [], []
    for j, band in enumerate("gri"):
        t = np.sort(rng.uniform(0, 300, per_band) + rng.uniform(0, 0.3, per_band))
        m = (17.0, 16.2, 15.8)[j] + (0.4, 0.3, 0.2)[j] * np.sin(2 * np.pi * t / period + 0.3 * j)
        m = m + rng.normal(0, 0.1, per_band)
        singles.append(LightCurve.from_arrays(t, m, np.full(per_band, 0.1)))
        t_all.append(t), m_all.append(m), b_all.extend([band] * per_band)
    t, m = np.concatenate(t_all), np.concatenate(m_all)
    return LightCurve.from_arrays(t, m, np.full(len(t), 0.1), np.array(b_all, dtype=object)), singles


@pytest.mark.parametrize("seed", range(5))
def test_multiband_recovers_a_shared_period_no_single_band_resolves(seed):
    period = 0.6123
    lc, singles = sparse_multiband(seed, period)
    alone = search_periods(singles, PeriodSearchConfig(min_points=5, multiband="per-band", **FAST))
    assert all(abs(r.period_days / period - 1) > 0.01 for r in alone), [r.period_days for r in alone]
    for config in (PeriodSearchConfig(multiband="per-band", **FAST), V2):
        (together,) = search_periods([lc], config)
        assert together.period_days == pytest.approx(period, rel=0.01), config


def test_multiband_power_agrees_with_astropy_on_the_same_grid():
    lc, _ = sparse_multiband(0, per_band=40)
    grid = FrequencyGrid(0.01, 0.002, 2500)
    power = periodogram(lc, PeriodSearchConfig(multiband="per-band"), grid)
    reference = LombScargleMultiband(
        lc.mjd, lc.mag, lc.band.astype(str), lc.magerr, nterms_base=0, nterms_band=1
    ).power(grid.frequencies(), method="flexible")
    assert int(np.argmax(power)) == int(np.argmax(reference))
    assert np.max(np.abs(power - reference)) < 1e-4


def test_per_band_mode_on_one_band_is_the_single_band_search():
    lc = sinusoid(np.random.default_rng(11), 2.2)
    (plain,) = search_periods([lc], PeriodSearchConfig(**FAST))
    (per_band,) = search_periods([lc], PeriodSearchConfig(multiband="per-band", **FAST))
    assert per_band == plain


def test_eclipsing_binary_is_reported_at_its_orbital_period():
    period = 1.37
    lc = eclipsing(np.random.default_rng(7), period)
    (legacy,) = search_periods([lc], PeriodSearchConfig(**FAST))
    assert legacy.period_days == pytest.approx(period / 2, rel=0.01)  # the single sine's half period
    (chosen,) = search_periods([lc], V2)
    assert chosen.period_days == pytest.approx(period, rel=0.01)
    ratio = chosen.runner_up_period_days / period
    assert min(abs(ratio - 0.5), abs(ratio - 2)) < 0.01, chosen
    assert chosen.significant() and chosen.power == pytest.approx(legacy.power, rel=0.01)


def test_fold_on_peak_folds_an_eclipsing_binary_at_its_highest_peak_while_2p_is_published():
    period = 1.37
    lc = eclipsing(np.random.default_rng(7), period)
    (on_peak,) = search_periods([lc], V2)
    assert V2.fold_on == "peak"
    assert on_peak.period_days == pytest.approx(period, rel=0.01)  # the published choice: 2P
    assert on_peak.fold_period_days == pytest.approx(period / 2, rel=0.01)  # the highest peak: P
    (on_chosen,) = search_periods([lc], dataclasses.replace(V2, fold_on="chosen"))
    assert on_chosen.fold_period_days == on_chosen.period_days == on_peak.period_days
    (legacy,) = search_periods([lc], PeriodSearchConfig(**FAST))
    assert legacy.fold_period_days == legacy.period_days
    with pytest.raises(ValueError, match="fold_on"):
        PeriodSearchConfig(fold_on="catalogue")


@pytest.mark.parametrize("period", [0.3141, 2.718, 23.0])
def test_harmonic_choice_keeps_sinusoids_at_their_period(period):
    (result,) = search_periods([sinusoid(np.random.default_rng(int(period * 1000)), period)], V2)
    assert result.period_days == pytest.approx(period, rel=0.01)
    assert result.significant() and abs(result.runner_up_period_days / period - 1) > 0.01


def test_harmonic_choice_prefers_the_true_frequency_over_its_daily_alias():
    """Nightly sampling of a sawtooth (RR Lyrae-like) at 0.57 d: the aliases at |f ± 1| c/d fit worse."""
    period = 0.57
    rng = np.random.default_rng(21)
    t = np.sort(np.arange(120) * 1.0 + rng.uniform(0, 0.15, 120))  # one point a night, same hour
    phase = (t / period) % 1.0
    mag = 15.0 + 0.5 * (phase - 0.5) ** 3 * 8 + rng.normal(0, 0.03, len(t))
    lc = LightCurve.from_arrays(t, mag, np.full(len(t), 0.03))
    (result,) = search_periods([lc], dataclasses.replace(V2, min_period_days=0.2))
    assert result.period_days == pytest.approx(period, rel=0.01)


def test_coarse_to_fine_finds_the_native_grid_peak():
    for seed, period in enumerate([0.4321, 3.3, 17.0]):
        lc = sinusoid(np.random.default_rng(seed), period)
        (full,) = search_periods([lc], PeriodSearchConfig(**FAST))
        (coarse,) = search_periods([lc], PeriodSearchConfig(coarse_factor=4, **FAST))
        assert coarse.period_days == pytest.approx(full.period_days, rel=1e-9)
        assert coarse.power == pytest.approx(full.power, abs=1e-6)
        assert coarse.n_frequencies < full.n_frequencies / 3


def test_new_settings_default_to_the_first_bundles_and_stay_out_of_their_fingerprint():
    first_bundle = {
        "min_period_days": 0.05,
        "max_period_days": 1000.0,
        "oversampling": 5,
        "max_frequencies": 1000000,
        "backend": "nifty-ls",
        "multiband": "centre",
        "min_points": 10,
        "threads": 1,
    }
    assert PeriodSearchConfig(**first_bundle).fingerprint() == first_bundle
    assert PeriodSearchConfig(**first_bundle) == PeriodSearchConfig()
    v2 = PeriodSearchConfig.v2().fingerprint()
    assert v2["fold_on"] == "peak" and "fold_on" not in PeriodSearchConfig().fingerprint()
    assert v2["peak_choice"] == "harmonic" and v2["multiband"] == "per-band" and v2["min_period_days"] == 0.03


def test_skipped_and_searched_results_carry_a_runner_up_only_when_searched():
    flat = LightCurve.from_arrays(np.linspace(0, 100, 50), np.full(50, 15.0), np.full(50, 0.1))
    t = survey_times(np.random.default_rng(5))
    lc = LightCurve.from_arrays(t, 15 + 0.2 * np.sin(2 * np.pi * t / 1.9), np.full(len(t), 0.05))
    for config in (PeriodSearchConfig(**FAST), V2):
        skipped, found = search_periods([flat, lc], config)
        assert math.isnan(skipped.runner_up_period_days)
        assert math.isfinite(found.runner_up_period_days)
        assert abs(found.runner_up_period_days / found.period_days - 1) > 0.01


def test_default_settings_are_the_first_bundles_search_bit_for_bit():
    """Today's search: one nifty-ls periodogram of band-centred magnitudes on the native grid, its highest
    point (same bits), Baluev's FAP as astropy computes it (to 1e-4 relative: astropy's variance of t
    loses digits). The shipped bundles' windows were folded with exactly these periods."""
    from astropy.timeseries import LombScargle
    from nifty_ls.finufft import lombscargle

    from broker.period import centre_bands, frequency_grid

    lcs = [sinusoid(np.random.default_rng(40), 0.9), sparse_multiband(1, per_band=60)[0]]
    for lc, result in zip(lcs, search_periods(lcs, PeriodSearchConfig(**FAST)), strict=True):
        grid, _ = frequency_grid(lc.baseline_days, PeriodSearchConfig(**FAST))
        y = centre_bands(lc)
        power = lombscargle(lc.mjd, y, grid.f0, grid.df, grid.n, dy=lc.magerr, nthreads=1)
        best = int(np.argmax(power))
        assert result.period_days == 1.0 / (grid.f0 + grid.df * best)
        assert result.power == power[best]
        fap = LombScargle(lc.mjd, y, lc.magerr).false_alarm_probability(
            power[best], method="baluev", maximum_frequency=grid.fmax
        )
        assert result.false_alarm_probability == pytest.approx(fap, rel=1e-4, abs=1e-300)


def test_the_refit_leaves_out_a_band_too_sparse_for_the_dense_bands_model():
    band = lambda n: (np.arange(n, dtype=float), np.zeros(n), np.ones(n))  # noqa: E731
    dense, sparse, close = band(50), band(12), band(40)
    # 50 points: 3 harmonics, whose 2P model (13 parameters) needs 39 points in each refitted band
    assert [len(b[0]) for b in refit_bands([dense, sparse], 3)] == [50]
    assert [len(b[0]) for b in refit_bands([dense, close], 3)] == [50, 40]
    assert refit_bands([sparse], 3)[0] is sparse  # nothing qualifies: every band


def test_a_sparse_second_band_does_not_double_a_cepheid():
    """50 I-band epochs of a Cepheid-like sawtooth beside 6 V epochs. With the V band in the refit, every band
    was capped at one harmonic and the 2P model won on this curve (2 × 3.1416 d was published)."""
    period, rng = 3.1416, np.random.default_rng(4)

    def shape(t: np.ndarray, amp: float) -> np.ndarray:
        phase = 2 * np.pi * t / period
        return amp * (np.sin(phase) + 0.4 * np.sin(2 * phase + 1.0) + 0.2 * np.sin(3 * phase + 2.0))

    t_i = np.sort(rng.uniform(0, 2000, 50))
    t_v = np.sort(rng.uniform(0, 2000, 6))
    lc = LightCurve.from_arrays(
        np.r_[t_i, t_v],
        np.r_[15 + shape(t_i, 0.3), 15.8 + shape(t_v, 0.45)] + rng.normal(0, 0.02, 56),
        np.full(56, 0.02),
        np.r_[np.full(50, "I", object), np.full(6, "V", object)],
    )
    (result,) = search_periods([lc], V2)
    assert result.period_days == pytest.approx(period, rel=0.01)
