"""The alias-aware period choice (`harmonic_choice`): simulated curves whose true period is known."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from broker.period import PeriodSearchConfig, search_periods
from broker.period.choice import Choice, harmonic_choice
from broker.period.grid import prepare
from broker.period.settings import PeriodConfigError
from models.lightcurve import LightCurve
from tests.unit.test_period import survey_times

SIDEREAL = 1.0027379  # cycles per day
V2 = PeriodSearchConfig.v2(min_period_days=0.1, max_period_days=100.0)


def rrab(phase: np.ndarray) -> np.ndarray:
    """RR Lyrae ab light curve [mag, 0 at mean]: a steep rise over 15% of the cycle, a slow decline."""
    rise = phase < 0.15
    return np.where(rise, 0.5 - phase / 0.15, -0.5 + (phase - 0.15) / 0.85) * 0.8


def nightly_times(rng: np.random.Generator, nights: int, spread: float) -> np.ndarray:
    """One visit on each of `nights` random nights (of twice as many) at nearly the same sidereal time,
    with a normal scatter of `spread` days [days]."""
    night = np.sort(rng.choice(np.arange(nights * 2), size=nights, replace=False)).astype(float)
    return night / SIDEREAL + rng.normal(0.0, spread, nights)


def two_bands(t: np.ndarray, mag: np.ndarray, rng: np.random.Generator, noise: float) -> LightCurve:
    """Alternate visits go to g and r; r has 0.7 times the amplitude and a 0.4 mag offset."""
    band = np.where(np.arange(len(t)) % 2 == 0, "g", "r").astype(object)
    scaled = np.where(band == "g", mag, 0.7 * mag - 0.4) + 16.0 + rng.normal(0, noise, len(t))
    return LightCurve.from_arrays(t, scaled, np.full(len(t), noise), band)


def test_nightly_rr_lyrae_is_chosen_over_its_sidereal_aliases():
    """60 visits, one a night within about an hour of the same sidereal time, noise half the amplitude:
    the alias peaks at |f ± 1.0027| c/d are often the highest, but only f folds the sharp RRab rise."""
    period = 0.5731
    curves = []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        t = nightly_times(rng, 60, spread=0.04)
        curves.append(two_bands(t, rrab((t / period) % 1.0), rng, noise=0.2))
    chosen = search_periods(curves, V2)
    highest_peak = search_periods(curves, dataclasses.replace(V2, peak_choice="max"))
    assert sum(abs(r.period_days / period - 1) < 0.01 for r in chosen) >= 8, chosen
    assert sum(abs(r.period_days / period - 1) < 0.01 for r in highest_peak) <= 5, highest_peak


def pulsation_on_a_trend(seed: int, drift: float = 0.4) -> tuple[LightCurve, float]:
    """A 0.61 d RRab (0.4 mag peak to peak) on a slow drift (a 240 d sinusoid, `drift` mag peak to peak),
    about 210 visits at random hours of random nights over 300 d with seasonal gaps: the drift, seen only
    1.25 times, is the highest periodogram peak."""
    period = 0.6123
    rng = np.random.default_rng(seed)
    t = survey_times(rng, 300, 300.0)
    mag = 0.5 * rrab((t / period) % 1.0) + drift / 2 * np.sin(2 * np.pi * t / 240.0)
    return two_bands(t, mag, rng, noise=0.05), period


def test_a_slow_drift_seen_once_does_not_outfit_the_pulsation():
    """Over 8 curves the drift wins without the rule and the pulsation with it. The rule is not enough
    when the drift is much larger than the pulsation: its daily aliases near 1 c/d repeat and win (at this
    drift they do so for 1 curve in 8; at 1.5 times the drift for all)."""
    config = dataclasses.replace(V2, max_period_days=1000.0)
    curves = [pulsation_on_a_trend(seed) for seed in range(8)]
    period = curves[0][1]
    chosen = search_periods([lc for lc, _ in curves], config)
    without_rule = search_periods([lc for lc, _ in curves], dataclasses.replace(config, min_cycles=0.0))
    assert sum(abs(r.period_days / period - 1) < 0.01 for r in chosen) >= 6, chosen
    assert sum(r.period_days > 100 for r in without_rule) >= 7, without_rule


def test_a_period_seen_fewer_times_is_still_reported_when_nothing_repeats():
    """Only a slow sinusoid (1.5 cycles over the baseline): every peak that repeats is noise, none is
    significant, so the slow period is reported (significant) with the best repeating one as runner-up."""
    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(0, 300, 200))
    lc = LightCurve.from_arrays(t, 15 + 0.5 * np.sin(2 * np.pi * t / 200.0) + rng.normal(0, 0.02, 200),
                                np.full(200, 0.02))  # fmt: skip
    (result,) = search_periods([lc], dataclasses.replace(V2, max_period_days=1000.0))
    assert result.period_days == pytest.approx(200.0, rel=0.1)
    assert result.significant() and result.runner_up_period_days < 100


def test_harmonic_choice_keeps_its_signature_and_counts_its_fits():
    lc, period = pulsation_on_a_trend(0)
    config = dataclasses.replace(V2, max_period_days=1000.0)
    p, skip = prepare(lc, config)
    assert skip is None
    bands = [(s.t, s.y, s.dy**-2.0) for s in p.band_series(p.grid)]
    peaks = np.array([1 / 240.0, 1 / period, 1 / period + SIDEREAL])
    choice, n_evaluations = harmonic_choice(p, bands, peaks, config)
    assert isinstance(choice, Choice) and isinstance(n_evaluations, int) and n_evaluations > 0
    assert 1 / choice.frequency == pytest.approx(period, rel=0.01)
    assert math.isfinite(choice.runner_up) and 0 < choice.power <= 1


def test_min_cycles_is_validated_and_stays_out_of_legacy_fingerprints():
    with pytest.raises(PeriodConfigError, match="min_cycles"):
        PeriodSearchConfig(min_cycles=-1.0)
    assert "min_cycles" not in PeriodSearchConfig().fingerprint()
    assert PeriodSearchConfig.v2().fingerprint()["min_cycles"] == 3.0


def test_a_young_curve_keeps_a_significant_highest_peak_over_an_insignificant_choice(
    shared_data, monkeypatch
):
    """On young real curves (first 30-60 points of CRTS objects) the alias-aware choice may prefer, by BIC,
    a candidate whose own peak is noise. It must never publish a period less significant than the highest
    peak unless that period is significant itself (FAP <= 0.01): a periodic object would be called
    non-periodic. Without the rule this happens on these curves (a real beta Lyrae at 60 points)."""
    import broker.period.search as search
    from tests.fixtures.crts_head import first_crts_objects

    def cut(lc: LightCurve, n: int) -> LightCurve:
        return LightCurve(lc.mjd[:n], lc.mag[:n], lc.magerr[:n], lc.band[:n])

    objects = first_crts_objects(shared_data, 24, min_points=80)
    young = [cut(o.lightcurve, n) for n in (30, 45, 60) for o in objects]
    v2 = PeriodSearchConfig.v2()
    peaks = search_periods(young, dataclasses.replace(v2, peak_choice="max"))
    chosen = search_periods(young, v2)
    monkeypatch.setattr(search, "_significant_or_peak", lambda curves, choices, fap: (choices, fap))
    unguarded = search_periods(young, v2)

    def worse(c, p) -> bool:
        return c.false_alarm_probability > max(search.MAX_CHOICE_FAP, p.false_alarm_probability) * (1 + 1e-9)

    assert sum(worse(u, p) for u, p in zip(unguarded, peaks, strict=True)) >= 1
    for c, u, p in zip(chosen, unguarded, peaks, strict=True):
        assert not worse(c, p)
        assert c.fold_period_days == pytest.approx(p.fold_period_days)  # windows fold alike either way
        if worse(u, p):  # the highest peak is published, the choice kept as its runner-up
            assert c.period_days == pytest.approx(p.period_days)
            different = abs(u.period_days / p.period_days - 1) > search.DIFFERENT
            runner_up = u.period_days if different else u.runner_up_period_days
            assert c.runner_up_period_days == pytest.approx(runner_up, nan_ok=True)
        else:
            assert c.period_days == u.period_days
