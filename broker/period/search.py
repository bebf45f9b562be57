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
from dataclasses import dataclass

import numpy as np

from broker.period import harmonic
from broker.period.engines import run_engine
from broker.period.grid import FrequencyGrid, Prepared, Series, prepare
from broker.period.settings import PeriodResult, PeriodSearchConfig
from models.lightcurve import LightCurve

DAILY_ALIASES = (-2.0, -1.0, 1.0, 2.0)  # cycles/day added to a peak: the aliases of a nightly cadence
DAY_LENGTHS = (1.0, 1.0027379)  # cycles/day of a solar and a sidereal day
MIN_ODD_SHARE = 0.02  # 2P must explain this share of the variance its P fit leaves to the odd harmonics
POLISH_POINTS = 17  # chi^2 samples across ±1 native step when polishing a candidate
FINALISTS = 3  # seeds polished to their chi^2 minimum before the final comparison
PEAKS_PER_CANDIDATE = 4  # coarse peaks refined per harmonic candidate (coarse-to-fine)
DIFFERENT = 0.01  # a runner-up differs from the chosen period by more than this fraction


@dataclass(frozen=True)
class _Choice:
    frequency: float
    power: float  # LS power of the peak carrying the period
    runner_up: float  # frequency, NaN when none


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

    results: list[PeriodResult] = []
    found = dict(zip(todo, choices, strict=True))
    fap = _faps(curves, [found[i][0] for i in todo])
    fap_of = dict(zip(todo, fap, strict=True))
    for i, (_, skip_reason) in enumerate(prepared):
        if i not in found:
            results.append(PeriodResult(math.nan, 0.0, 1.0, 0, skip_reason))
            continue
        choice, n_frequencies = found[i]
        runner_up = 1.0 / choice.runner_up if math.isfinite(choice.runner_up) else math.nan
        results.append(
            PeriodResult(
                1.0 / choice.frequency, choice.power, float(fap_of[i]), n_frequencies, None, runner_up
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
    flat = run_engine(engine, [s for series in per_curve for s in series], threads)
    out, at = [], 0
    for series in per_curve:
        band_powers, at = flat[at : at + len(series)], at + len(series)
        if len(series) == 1:
            out.append(band_powers[0])
            continue
        chi2_0 = [harmonic.band_chi2(s.t, s.y, s.dy**-2.0, np.empty(0), 1)[1] for s in series]
        out.append(sum(c * pw for c, pw in zip(chi2_0, band_powers, strict=True)) / sum(chi2_0))
    return out


def _legacy_choices(curves, grids, powers, config, engine, threads) -> list[tuple[_Choice, int]]:
    """The first bundles' choice: the highest grid point; a capped grid is refined once around it on the
    native step (±1 coarse step) with the same engine."""
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
        out.append((_Choice(frequency, float(power[best]), runner), n_frequencies))
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


def _refined_choices(curves, grids, powers, config) -> list[tuple[_Choice, int]]:
    """Coarse peaks refined exactly on the native grid, then (harmonic) the alias-aware refit."""
    out = []
    for p, grid, power in zip(curves, grids, powers, strict=True):
        bands = _bands(p)
        n_peaks = PEAKS_PER_CANDIDATE * config.candidates
        peaks = _local_maxima(power)
        peaks = peaks[np.argsort(power[peaks])[::-1][:n_peaks]]
        # every native-grid point within one coarse step of each coarse peak
        half = max(1, round(grid.df / p.native_df))
        n_native = math.floor((p.grid.fmax - p.grid.f0) / p.native_df + 1e-9) + 1
        centre = np.rint((grid.f0 + grid.df * peaks - p.grid.f0) / p.native_df).astype(int)
        index = np.clip(centre[:, None] + np.arange(-half, half + 1)[None, :], 0, n_native - 1)
        fine = harmonic.power(bands, (p.grid.f0 + p.native_df * index).ravel()).reshape(index.shape)
        best_in_peak = np.argmax(fine, axis=1)
        peak_freq = p.grid.f0 + p.native_df * index[np.arange(len(index)), best_in_peak]
        peak_power = fine[np.arange(len(index)), best_in_peak]
        order = np.argsort(peak_power)[::-1]
        peak_freq, peak_power = peak_freq[order], peak_power[order]
        n_frequencies = grid.n + index.size
        if config.peak_choice == "max":
            other = np.abs(peak_freq / peak_freq[0] - 1) > DIFFERENT
            runner = float(peak_freq[other][0]) if other.any() else math.nan
            out.append((_Choice(float(peak_freq[0]), float(peak_power[0]), runner), n_frequencies))
            continue
        choice, n_fits = _harmonic_choice(p, bands, peak_freq, config)
        out.append((choice, n_frequencies + n_fits))
    return out


def _harmonic_choice(p: Prepared, bands, peak_freq: np.ndarray, config: PeriodSearchConfig):
    """Choose among the top peaks, their daily aliases and their doubled periods by BIC.

    Each candidate frequency f is fitted with `harmonic_terms` harmonics (per band; fewer when a band is
    sparse) and its 2P version (f/2) with twice as many, so 2P wins only when the odd harmonics (unequal
    eclipses, unequal maxima) lower chi^2 by more than the BIC penalty for the extra parameters.
    Candidates are polished to their local chi^2 minimum. Returns (choice, frequencies evaluated)."""
    # at least 3 points per parameter of the 2P model (4·terms + 1 per band) in the sparsest band
    sparsest = min(len(t) for t, _, _ in bands)
    terms = max(1, min(config.harmonic_terms, (sparsest // 3 - 1) // 4))
    fmin, fmax = p.grid.f0, p.grid.fmax
    # with one term the refit is the periodogram itself: only the 2P test can add information
    seeds = list(peak_freq[: config.candidates] if terms > 1 else peak_freq[:1])
    if terms > 1:
        seeds += list(_alias_seeds(peak_freq[:2]))
    seeds = np.array([f for f in seeds if fmin <= f <= fmax])
    n_points = sum(len(t) for t, _, _ in bands)
    log_n = math.log(n_points)
    evaluations = 0

    def fit(freqs: np.ndarray, n_terms: int, polish: bool) -> tuple[np.ndarray, np.ndarray]:
        """chi^2 at each frequency; with `polish`, after moving each to its local chi^2 minimum."""
        nonlocal evaluations
        if not polish:
            evaluations += len(freqs)
            return freqs, harmonic.multiband_chi2(bands, freqs, n_terms)[0]
        # one call: POLISH_POINTS across ±1 native step, then the vertex of a parabola through the minimum
        offsets = p.native_df * np.linspace(-1.0, 1.0, POLISH_POINTS)
        trial = np.maximum(freqs[:, None] + offsets[None, :], 1e-9)
        chi2 = harmonic.multiband_chi2(bands, trial.ravel(), n_terms)[0].reshape(trial.shape)
        evaluations += trial.size
        rows = np.arange(len(freqs))
        at = np.clip(np.argmin(chi2, axis=1), 1, POLISH_POINTS - 2)
        left, mid, right = chi2[rows, at - 1], chi2[rows, at], chi2[rows, at + 1]
        curvature = left - 2 * mid + right
        with np.errstate(invalid="ignore", divide="ignore"):
            shift = np.where(curvature > 0, 0.5 * (left - right) / curvature, 0.0)
        shift = np.clip(np.nan_to_num(shift), -1.0, 1.0)
        vertex = mid + 0.5 * (right - left) * shift + 0.5 * curvature * shift**2
        best = trial[rows, at] + shift * (offsets[1] - offsets[0])
        return best, np.minimum(np.min(chi2, axis=1), vertex)

    n_bands = len(bands)
    p1, p2 = n_bands * (2 * terms + 1), n_bands * (4 * terms + 1)
    chi2_0 = harmonic.multiband_chi2(bands, np.empty(0), 1)[1]

    def bic(polish: bool, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(frequencies, BIC, base frequencies), each (2, len(seeds)): row 0 the seed at P with `terms`
        harmonics, row 1 at 2P with 2·terms (BIC inf where 2P is out of range or not worth it)."""
        f1, chi2_1 = fit(seeds, terms, polish)
        f2, chi2_2 = fit(seeds / 2, 2 * terms, polish)
        # chi^2 in units of the best model's residual variance (at least the quoted errors): with
        # underfit shapes or underestimated errors a raw chi^2 gap would favour extra parameters (2P)
        scale = max(1.0, float(np.min(chi2_2)) / max(n_points - p2, 1))
        # the odd harmonics must matter to the shape (unequal eclipses do; a Cepheid's 0.2% does not)
        odd_share = (chi2_1 - chi2_2) / np.maximum(chi2_0 - chi2_2, 1e-300)
        worth_it = (odd_share >= MIN_ODD_SHARE) & (f2 >= fmin / 2)  # 2P up to twice the longest period
        bic_2 = np.where(worth_it, chi2_2 / scale + p2 * log_n, np.inf)
        return np.stack([f1, f2]), np.stack([chi2_1 / scale + p1 * log_n, bic_2]), np.stack([f1, 2 * f2])

    # every seed at its grid frequency; then the best FINALISTS seeds polished and compared again
    first_freqs, first_score, _ = bic(False, seeds)
    finalists = np.sort(np.argsort(first_score.min(axis=0))[:FINALISTS])
    freqs, score, base = bic(True, seeds[finalists])
    chosen = np.unravel_index(np.argmin(score), score.shape)
    f_best = freqs[chosen]
    # runner-up: the best other candidate, polished finalists first, then the other seeds as first seen
    ranked = [(score[i], freqs[i]) for i in np.ndindex(score.shape)]
    ranked += [(first_score[:, j].min(), first_freqs[np.argmin(first_score[:, j]), j])
               for j in range(len(seeds)) if j not in finalists]  # fmt: skip
    others = [f for sc, f in sorted(ranked, key=lambda r: r[0]) if np.isfinite(sc)]
    others = [f for f in others if abs(f / f_best - 1) > DIFFERENT]
    runner = float(others[0]) if others else math.nan
    peak_power = float(harmonic.power(bands, np.array([base[chosen]]))[0])
    return _Choice(float(f_best), peak_power, runner), evaluations


def _alias_seeds(peaks: np.ndarray) -> np.ndarray:
    """|f + k·d| for each peak f, k in DAILY_ALIASES and d a solar or sidereal day [cycles/day]: a nightly
    cadence puts alias peaks exactly there, as accurately as f itself."""
    shifts = np.multiply.outer(DAILY_ALIASES, DAY_LENGTHS).ravel()
    return np.abs(np.add.outer(peaks, shifts)).ravel()


def _faps(curves: list[Prepared], choices: list[_Choice]) -> np.ndarray:
    """Baluev FAPs of every chosen peak at once (grid's highest frequency, all points of the curve)."""
    if not curves:
        return np.empty(0)
    return harmonic.false_alarm_probability(
        [c.power for c in choices],
        [p.grid.fmax for p in curves],
        [len(p.t) for p in curves],
        [harmonic.weighted_time_variance(p.t, p.dy) for p in curves],
    )
