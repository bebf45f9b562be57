"""`search_periods`: the batch path from light curves to one `PeriodResult` each.

Steps: prepare every curve once (grid, centred or per-band magnitudes); one engine call over every band
series of the batch (threads over the batch); combine bands (sum of chi^2 reductions); then either
today's choice (highest grid point, capped grids refined around it) or, when coarse-to-fine or the
harmonic choice is on, the best coarse peaks refined exactly on the native grid and, for "harmonic", the
candidate periods refitted with a multi-harmonic model and chosen by BIC.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from broker.period import harmonic
from broker.period.choice import DIFFERENT, Choice, harmonic_choice
from broker.period.engines import run_engine
from broker.period.grid import FrequencyGrid, Prepared, Series, prepare
from broker.period.settings import PeriodResult, PeriodSearchConfig
from models.lightcurve import LightCurve

PEAKS_PER_CANDIDATE = 8  # coarse peaks refined per harmonic candidate (coarse-to-fine; 4 before the
# nominating pass became the classical periodogram: see engines.nominating_periodogram)
MAX_CHOICE_FAP = 0.1  # FAP up to which the choice may replace the highest peak (the trigger's default cut)


def search_periods(
    lightcurves: Sequence[LightCurve],
    config: PeriodSearchConfig,
    *,
    engine: str = "auto",
    threads: int = 1,
) -> list[PeriodResult]:
    """Best period of each light curve, one `PeriodResult` per input, in order.

    config: the science (from the bundle). engine, threads: which periodogram engine computes it and over
    how many threads the batch is split (operator settings; every engine gives the same powers).
    """
    prepared = [prepare(lc, config) for lc in lightcurves]
    todo = [i for i, (p, _) in enumerate(prepared) if p is not None]
    curves = [prepared[i][0] for i in todo]
    coarse = config.coarse_factor
    grids = [_coarse_grid(p.grid, coarse) if coarse > 1 else p.grid for p in curves]
    # a coarse pass only nominates peaks (refined per band, exactly): one centred periodogram is enough
    powers = _periodograms(curves, grids, engine, threads, centred=coarse > 1)

    if coarse == 1 and config.peak_choice == "max":
        choices = _legacy_choices(curves, grids, powers, config, engine, threads)
    else:  # per-curve numpy work (exp, matmul release the GIL): split over the threads too
        size = max(1, -(-len(curves) // threads))
        parts = [slice(i, i + size) for i in range(0, len(curves), size)]
        with ThreadPoolExecutor(max_workers=max(1, len(parts))) as pool:
            done = pool.map(lambda s: _refined_choices(curves[s], grids[s], powers[s], config), parts)
            choices = [choice for part in done for choice in part]

    fap = harmonic.peak_false_alarm_probability(curves, [choice.power for choice, _, _ in choices])
    if config.peak_choice == "harmonic":
        choices, fap = _significant_or_peak(curves, choices, fap)
    results: list[PeriodResult] = []
    found = dict(zip(todo, choices, strict=True))
    fap_of = dict(zip(todo, fap, strict=True))
    for i, (_, skip_reason) in enumerate(prepared):
        if i not in found:
            results.append(PeriodResult(math.nan, 0.0, 1.0, 0, skip_reason))
            continue
        choice, n_frequencies, (peak, _) = found[i]
        runner_up = 1.0 / choice.runner_up if math.isfinite(choice.runner_up) else math.nan
        fold = 1.0 / (peak if config.fold_on == "peak" else choice.frequency)
        results.append(
            PeriodResult(
                1.0 / choice.frequency, choice.power, float(fap_of[i]), n_frequencies, None, runner_up, fold
            )
        )
    return results


def periodogram(
    lightcurve: LightCurve,
    config: PeriodSearchConfig,
    grid: FrequencyGrid | None = None,
    engine: str = "auto",
) -> np.ndarray:
    """(grid.n,) power of one light curve on `grid` (default: its searched grid), bands as `config` says.

    Raises ValueError when the light curve cannot be searched (the skip reason is in the message)."""
    p, skip_reason = prepare(lightcurve, config)
    if p is None:
        raise ValueError(f"light curve cannot be searched: {skip_reason}")
    return _periodograms([p], [grid or p.grid], engine, 1)[0]


def _coarse_grid(grid: FrequencyGrid, factor: int) -> FrequencyGrid:
    return FrequencyGrid(grid.f0, grid.df * factor, (grid.n - 1) // factor + 1)


def _bands(p: Prepared) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(t, y, weights) of every usable band of `p`."""
    return [(s.t, s.y, s.dy**-2.0) for s in p.band_series(p.grid)]


def _periodograms(
    curves: list[Prepared], grids: list[FrequencyGrid], engine: str, threads: int, centred: bool = False
) -> list[np.ndarray]:
    """One (grid.n,) power array per curve; several bands combine as sum(chi2_0,b · P_b) / sum(chi2_0,b).
    centred: one periodogram of the band-centred magnitudes instead (nominating peaks only)."""
    if centred:
        per_curve = [[Series(p.t, p.y_centred, p.dy, g)] for p, g in zip(curves, grids, strict=True)]
    else:
        per_curve = [p.band_series(g) for p, g in zip(curves, grids, strict=True)]
    flat = run_engine(engine, [s for series in per_curve for s in series], threads, nominate=centred)
    out, at = [], 0
    for series in per_curve:
        band_powers, at = flat[at : at + len(series)], at + len(series)
        if len(series) == 1:
            out.append(band_powers[0])
            continue
        chi2_0 = [harmonic.band_chi2(s.t, s.y, s.dy**-2.0, np.empty(0), 1)[1] for s in series]
        out.append(sum(c * pw for c, pw in zip(chi2_0, band_powers, strict=True)) / sum(chi2_0))
    return out


def _legacy_choices(curves, grids, powers, config, engine, threads) -> list[tuple[Choice, int, tuple]]:
    """The first bundles' choice: the highest grid point; a capped grid is refined once around it on the
    native step (±1 coarse step) with the same engine. (choice, frequencies evaluated, peak frequency)."""
    capped = [k for k, p in enumerate(curves) if p.grid.df > p.native_df * (1 + 1e-9)]
    local = {k: _local_grid(curves[k], powers[k]) for k in capped}
    fine = dict(
        zip(
            capped,
            _periodograms([curves[k] for k in capped], list(local.values()), engine, threads),
            strict=True,
        )
    )
    out = []
    for k, p in enumerate(curves):
        grid, power = (local[k], fine[k]) if k in fine else (grids[k], powers[k])
        best = int(np.argmax(power))
        frequency = grid.f0 + grid.df * best
        # runner-up: the highest other local maximum of the searched grid, > 1% away in frequency
        peaks = _local_maxima(powers[k])
        freqs = grids[k].f0 + grids[k].df * peaks
        other = peaks[np.abs(freqs / frequency - 1) > DIFFERENT]
        runner = (
            float(freqs[np.abs(freqs / frequency - 1) > DIFFERENT][np.argmax(powers[k][other])])
            if len(other)
            else math.nan
        )
        n_frequencies = p.grid.n + (local[k].n if k in fine else 0)
        top = (frequency, float(power[best]))
        out.append((Choice(*top, runner), n_frequencies, top))
    return out


def _local_grid(p: Prepared, power: np.ndarray) -> FrequencyGrid:
    """Native-step grid spanning ±1 coarse step around the coarse peak (capped grids)."""
    grid = p.grid
    peak = grid.f0 + grid.df * int(np.argmax(power))
    first = max(0, math.floor((peak - grid.df - grid.f0) / p.native_df))
    last = math.ceil((min(grid.fmax, peak + grid.df) - grid.f0) / p.native_df)
    return FrequencyGrid(grid.f0 + first * p.native_df, p.native_df, last - first + 1)


def _local_maxima(power: np.ndarray) -> np.ndarray:
    """Indices of interior and edge points not below either neighbour."""
    left = np.r_[True, power[1:] >= power[:-1]]
    right = np.r_[power[:-1] >= power[1:], True]
    return np.flatnonzero(left & right)


def _refined_choices(curves, grids, powers, config) -> list[tuple[Choice, int, tuple[float, float]]]:
    """Coarse peaks refined exactly on the native grid, then (harmonic) the alias-aware refit.
    (choice, frequencies evaluated, (frequency, power) of the highest refined peak) per curve."""
    out = []
    for p, grid, power in zip(curves, grids, powers, strict=True):
        bands = _bands(p)
        n_peaks = PEAKS_PER_CANDIDATE * config.candidates
        peaks = _local_maxima(power)
        if len(peaks) > n_peaks:  # the n_peaks highest (their order does not matter: refined below)
            peaks = peaks[np.argpartition(power[peaks], len(peaks) - n_peaks)[-n_peaks:]]
        # every native-grid point within one coarse step of each coarse peak
        half = max(1, round(grid.df / p.native_df))
        n_native = math.floor((p.grid.fmax - p.grid.f0) / p.native_df + 1e-9) + 1
        centre = np.rint((grid.f0 + grid.df * peaks - p.grid.f0) / p.native_df).astype(int)
        first = np.clip(centre - half, 0, max(n_native - (2 * half + 1), 0))  # runs kept inside the grid
        index = np.minimum(first[:, None] + np.arange(2 * half + 1)[None, :], n_native - 1)
        fine = harmonic.power_on_steps(bands, p.grid.f0 + p.native_df * first, p.native_df, 2 * half + 1)
        best_in_peak = np.argmax(fine, axis=1)
        peak_freq = p.grid.f0 + p.native_df * index[np.arange(len(index)), best_in_peak]
        peak_power = fine[np.arange(len(index)), best_in_peak]
        order = np.argsort(peak_power)[::-1]
        peak_freq, peak_power = peak_freq[order], peak_power[order]
        peak = (float(peak_freq[0]), float(peak_power[0]))
        n_frequencies = grid.n + index.size
        if config.peak_choice == "max":
            other = np.abs(peak_freq / peak_freq[0] - 1) > DIFFERENT
            runner = float(peak_freq[other][0]) if other.any() else math.nan
            out.append((Choice(*peak, runner), n_frequencies, peak))
            continue
        choice, n_fits = harmonic_choice(p, bands, peak_freq, config)
        out.append((choice, n_frequencies + n_fits, peak))
    return out


def _significant_or_peak(curves: list[Prepared], choices: list, fap: np.ndarray) -> tuple[list, np.ndarray]:
    """The alias-aware choice replaces the highest peak only by a period at least as significant, or
    significant (FAP <= MAX_CHOICE_FAP): on young, sparse curves a multi-harmonic refit can prefer a
    candidate whose own peak is noise, and publishing it would mark a periodic object non-periodic.
    Otherwise the highest peak is published, with the choice as its runner-up (when it is more than
    DIFFERENT away; a weaker neighbour of the peak keeps the choice's own runner-up). fap: the choices' FAPs;
    returns the choices and their FAPs after the rule."""
    peak_fap = harmonic.peak_false_alarm_probability(curves, [power for _, _, (_, power) in choices])
    out, out_fap = [], fap.copy()
    for k, (choice, n, (frequency, power)) in enumerate(choices):
        if fap[k] > max(peak_fap[k], MAX_CHOICE_FAP):
            # a choice within DIFFERENT of the peak (a neighbouring, weaker local maximum) is no runner-up
            other = abs(choice.frequency / frequency - 1) > DIFFERENT
            choice = Choice(frequency, power, choice.frequency if other else choice.runner_up)
            out_fap[k] = peak_fap[k]
        out.append((choice, n, (frequency, power)))
    return out, out_fap
