"""Every registered engine against the reference, parametrised from the registry (as astropy tests its
methods); the operator's [period] settings; vectorised false-alarm probabilities against astropy."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.timeseries import LombScargle

from broker.config import load_config
from broker.errors import ConfigError
from broker.period import (
    ENGINES,
    FrequencyGrid,
    PeriodConfigError,
    PeriodSearchConfig,
    Series,
    resolve_engine,
    run_engine,
    search_periods,
    unavailable_reason,
)
from broker.period.harmonic import false_alarm_probability, multiband_chi2, power, weighted_time_variance
from models.lightcurve import LightCurve
from tests.unit.test_period import FAST, eclipsing, sinusoid
from tests.unit.test_period_science import sparse_multiband

# astropy-fast (fasper extirpolation) is an approximation: its powers are looser than the others'
TOLERANCE = {"astropy-fast": 5e-3}


def curves() -> list[LightCurve]:
    rng = np.random.default_rng(30)
    return [sinusoid(rng, 0.77, noise=0.1), eclipsing(rng, 2.1), sinusoid(rng, 13.0), sparse_multiband(4)[0]]


@pytest.mark.parametrize("name", list(ENGINES))
def test_every_engine_matches_the_reference_or_says_why_it_cannot_run(name):
    reason = unavailable_reason(name)
    if reason is not None:  # e.g. "cuda" on a machine without CUDA: refused at selection, with the reason
        with pytest.raises(PeriodConfigError, match=rf"'{name}' is not available here: .+"):
            resolve_engine(name)
        with pytest.raises(PeriodConfigError):
            search_periods(curves(), PeriodSearchConfig(**FAST), engine=name)
        return
    # 1. powers on one grid: the exact generalised Lomb-Scargle is the reference
    lc = curves()[0]
    grid = FrequencyGrid(0.01, 0.001, 9000)
    (got,) = run_engine(name, [Series(lc.mjd, lc.mag, lc.magerr, grid)])
    reference = power([(lc.mjd, lc.mag, lc.magerr**-2.0)], grid.frequencies())
    assert got.shape == (grid.n,) and int(np.argmax(got)) == int(np.argmax(reference))
    assert np.max(np.abs(got - reference)) < TOLERANCE.get(name, 1e-6)
    # 2. whole searches, every science setting: same periods as the reference engine (threads too)
    for config in (PeriodSearchConfig(**FAST), PeriodSearchConfig.v2(**FAST)):
        expected = search_periods(curves(), config, engine="astropy")
        for threads in (1, 2):
            found = search_periods(curves(), config, engine=name, threads=threads)
            for a, b in zip(found, expected, strict=True):
                assert a.period_days == pytest.approx(b.period_days, rel=1e-3), (name, config)
                assert a.false_alarm_probability == pytest.approx(b.false_alarm_probability, abs=1e-3)


def test_auto_is_resolved_in_one_place_and_unknown_names_list_the_valid_ones():
    assert resolve_engine("auto") == ("cuda" if unavailable_reason("cuda") is None else "nifty-ls")
    with pytest.raises(ValueError, match=r"'gpu-magic'.*auto.*nifty-ls.*astropy-fast.*astropy.*cuda"):
        search_periods(curves(), PeriodSearchConfig(**FAST), engine="gpu-magic")


def test_threads_split_the_batch_without_changing_answers():
    batch = curves() * 3
    assert search_periods(batch, PeriodSearchConfig(**FAST), threads=3) == search_periods(
        batch, PeriodSearchConfig(**FAST)
    )


def test_period_section_of_the_plugin_config():
    config = load_config(overrides={"period.engine": "astropy", "period.threads": 2})
    assert (config.period.engine, config.period.threads) == ("astropy", 2)
    assert load_config().period.engine == "auto"
    with pytest.raises(ConfigError, match=r"period.engine = 'gpu-magic'.*valid: \['auto', 'nifty-ls'"):
        load_config(overrides={"period.engine": "gpu-magic"})
    with pytest.raises(ConfigError, match=r"period\.threads"):
        load_config(overrides={"period.threads": 0})
    if unavailable_reason("cuda") is not None:
        with pytest.raises(ConfigError, match=r"period.engine = 'cuda'.*not available here.*CUDA"):
            load_config(environ={"VARSTREAM_PERIOD__ENGINE": "cuda"})


@pytest.mark.parametrize("seed", range(4))
def test_vectorised_false_alarm_probability_is_astropys_baluev(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    t = 50000 + np.sort(rng.uniform(0, 2000, n))
    dy = rng.uniform(0.02, 0.2, n)
    y = rng.normal(15, 0.1, n)
    z = np.array([0.05, 0.1, 0.3, 0.6])
    expected = LombScargle(t, y, dy).false_alarm_probability(z, method="baluev", maximum_frequency=20.0)
    got = false_alarm_probability(
        z, np.full(4, 20.0), np.full(4, n), np.full(4, weighted_time_variance(t, dy))
    )
    np.testing.assert_allclose(
        got, np.clip(expected, 0, 1), rtol=1e-5, atol=1e-12
    )  # astropy loses ~1e-6 to t^2 - mean^2


def test_the_reference_is_astropys_exact_lomb_scargle_and_the_one_term_fit():
    lc = curves()[0]
    freqs = np.linspace(0.01, 9.0, 3000)
    band = [(lc.mjd, lc.mag, lc.magerr**-2.0)]
    exact = LombScargle(lc.mjd, lc.mag, lc.magerr).power(freqs, method="cython")
    chi2, chi2_0 = multiband_chi2(band, freqs, 1)
    np.testing.assert_allclose(power(band, freqs), exact, atol=1e-10)
    np.testing.assert_allclose(1 - chi2 / chi2_0, exact, atol=1e-9)


def _least_squares_chi2(bands, freqs, terms):
    """Reference: per-band design matrix [1, cos kθ, sin kθ] and numpy's least squares, one frequency at
    a time (what the trigonometric-sum normal equations must reproduce)."""
    out = np.zeros(len(freqs))
    for t, y, w in bands:
        sw = np.sqrt(w)
        for i, f in enumerate(freqs):
            theta = 2 * np.pi * f * t
            k = np.arange(1, terms + 1)[None, :]
            x = np.hstack([np.ones((len(t), 1)), np.cos(k * theta[:, None]), np.sin(k * theta[:, None])])
            beta = np.linalg.lstsq(x * sw[:, None], y * sw, rcond=None)[0]
            out[i] += float(np.sum(w * (y - x @ beta) ** 2))
    return out


@pytest.mark.parametrize("terms", [1, 2, 3, 6])
def test_multi_harmonic_chi2_is_the_least_squares_fit_on_irregular_and_regular_frequencies(terms):
    lc, _ = sparse_multiband(3, per_band=40)
    names = np.unique(lc.band.astype(str))
    bands = [(lc.mjd[lc.band == b], lc.mag[lc.band == b], lc.magerr[lc.band == b] ** -2.0) for b in names]
    irregular = np.random.default_rng(0).uniform(0.01, 20.0, 25)
    runs = (np.array([0.4, 1.633, 7.1])[:, None] + 3e-4 * np.arange(17)[None, :]).ravel()  # a polish grid
    for freqs in (irregular, runs):
        chi2, chi2_0 = multiband_chi2(bands, freqs, terms)
        reference = _least_squares_chi2(bands, freqs, terms)
        np.testing.assert_allclose(chi2, reference, rtol=1e-7, atol=1e-9 * chi2_0)
    if terms == 1:
        np.testing.assert_allclose(power(bands, runs), 1 - reference / chi2_0, atol=1e-9)


def _schuster(s: Series) -> np.ndarray:
    """The classical periodogram by direct sums: 2·|sum w y0 e^{2πift}|² / sum w y0², w normalised."""
    w = s.dy**-2.0 / np.sum(s.dy**-2.0)
    y0 = s.y - np.sum(w * s.y)
    transform = np.exp(2j * np.pi * np.multiply.outer(s.grid.frequencies(), s.t)) @ (w * y0)
    return 2 * np.abs(transform) ** 2 / np.sum(w * y0**2)


def test_nominating_periodogram_is_the_classical_periodogram_on_kept_bounded_plans():
    from broker.period import engines

    pytest.importorskip("nifty_ls")
    rng = np.random.default_rng(5)
    batch = []
    for n_freq in (3_000, 3_100, 17_777, 40_000, 3_050, *range(50_000, 62_000, 1_000)):
        t = 53_500 + np.sort(rng.uniform(0, 2000, 200))  # MJD-like times: phases reduced mod 2π
        y = 15 + 0.2 * np.sin(2 * np.pi * t / rng.uniform(0.1, 30)) + rng.normal(0, 0.05, 200)
        dy = rng.uniform(0.03, 0.1, 200)
        batch.append(Series(t, y, dy, FrequencyGrid(1 / 2000, 25.0 / n_freq, n_freq)))
    nominated = engines.nominating_periodogram(batch)
    assert [len(p) for p in nominated] == [s.grid.n for s in batch]
    for got, s in list(zip(nominated, batch, strict=True))[:5]:  # direct sums: a few grids are enough
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, _schuster(s), atol=5e-3)  # float32 transform (COARSE_DTYPE)
    kept = sum(n * len(free) for n, free in engines._free_plans.items())
    assert 0 < kept <= engines._PLAN_MODES_KEPT  # kept across calls, least recently used sizes out
    threaded = run_engine("nifty-ls", batch, threads=2, nominate=True)
    for got, expected in zip(threaded, nominated, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_nominated_peaks_hold_the_lomb_scargle_peak():
    """The nominating pass only has to put Lomb-Scargle's highest peak among the peaks coarse-to-fine
    refines (PEAKS_PER_CANDIDATE x candidates): on varied curves (sinusoids and eclipsing binaries, few and
    many points, short and CRTS-like baselines, grids of 1e3 to 1e5 frequencies) it is among the 20
    highest nominated local maxima, within one grid step."""
    from broker.period import engines
    from broker.period.search import _local_maxima

    pytest.importorskip("nifty_ls")
    rng = np.random.default_rng(12)
    batch = []
    for k, (n_points, baseline, n_freq) in enumerate(
        [(40, 300, 1_000), (150, 3000, 100_000), (400, 3000, 60_000), (80, 900, 20_000), (250, 3000, 90_000)]
        * 2
    ):
        t = 53_500 + np.sort(rng.uniform(0, baseline, n_points))
        period = rng.uniform(0.2, 50)
        phase = (t / period) % 1
        signal = 0.3 * np.sin(2 * np.pi * phase) if k % 2 else 0.5 * (np.abs(phase - 0.3) < 0.05)
        dy = rng.uniform(0.02, 0.2, n_points)
        y = 15 + signal + rng.normal(0, dy)
        batch.append(Series(t, y, dy, FrequencyGrid(1 / baseline, 10.0 / n_freq, n_freq)))
    nominated = engines.nominating_periodogram(batch)
    for got, expected in zip(nominated, run_engine("nifty-ls", batch), strict=True):
        peaks = _local_maxima(got)
        top = peaks[np.argsort(got[peaks])[-20:]]
        assert np.min(np.abs(top - np.argmax(expected))) <= 1
