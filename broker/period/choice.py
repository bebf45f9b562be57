"""The alias-aware choice of a period among a curve's best periodogram peaks (`peak_choice = "harmonic"`).

A single sine's highest peak is often not the period: eclipsing binaries peak at half the orbit, and a
nightly cadence puts alias peaks at |f ± k| cycles/day that fold the points almost as well. The top peaks,
their daily aliases and their doubled periods are refitted with a multi-harmonic model and chosen by BIC.
A period must also repeat `min_cycles` times over the baseline: a slow trend (a blend, a seasonal zero-point
drift) that outfits the pulsation with one or two "cycles" is not a period the data establish. The trend is
still reported when nothing that repeats is significant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from broker.period import harmonic
from broker.period.grid import Prepared
from broker.period.settings import PeriodSearchConfig

DAILY_ALIASES = (-2.0, -1.0, 1.0, 2.0)  # cycles/day added to a peak: the aliases of a nightly cadence
DAY_LENGTHS = (1.0, 1.0027379)  # cycles/day of a solar and a sidereal day
MIN_ODD_SHARE = 0.02  # 2P must explain this share of the variance its P fit leaves to the odd harmonics
POLISH_POINTS = 17  # chi^2 samples across ±1 native step when polishing a candidate
FINALISTS = 3  # seeds polished to their chi^2 minimum before the final comparison
DIFFERENT = 0.01  # a runner-up differs from the chosen period by more than this fraction
SIGNIFICANT = 0.01  # false-alarm probability below which a repeating period beats a stronger slow peak


@dataclass(frozen=True)
class Choice:
    frequency: float
    power: float  # LS power of the peak carrying the period
    runner_up: float  # frequency, NaN when none


def harmonic_choice(p: Prepared, bands, peak_freq: np.ndarray, config: PeriodSearchConfig):
    """Choose among the top peaks, their daily aliases and their doubled periods by BIC.

    Each candidate frequency f is fitted with `harmonic_terms` harmonics (per band; fewer when a band is
    sparse; a band too sparse for the densest band's model is left out: `refit_bands`) and its 2P
    version (f/2) with twice as many, so 2P wins only when the odd harmonics (unequal
    eclipses, unequal maxima) lower chi^2 by more than the BIC penalty for the extra parameters.
    Candidates are polished to their local chi^2 minimum. Periods (P or 2P) that repeat fewer than
    `config.min_cycles` times over the baseline are not candidates; but when the highest peak is such a
    slow one and the chosen period's peak is not significant (FAP >= SIGNIFICANT), the slow peak is kept,
    as it is when no peak repeats. Returns (choice, frequencies evaluated)."""
    all_bands, bands = bands, refit_bands(bands, config.harmonic_terms)
    terms = supported_terms(min(len(t) for t, _, _ in bands), config.harmonic_terms)
    fmin, fmax = p.grid.f0, p.grid.fmax
    # the lowest frequency that repeats min_cycles times over the baseline (waived when no peak does)
    f_repeats = config.min_cycles / max(float(np.ptp(p.t)), 1e-9)
    peaks = peak_freq[peak_freq >= f_repeats]
    if not len(peaks):
        peaks, f_repeats = peak_freq, 0.0
    # with one term the refit is the periodogram itself: only the 2P test can add information
    seeds = list(peaks[: config.candidates] if terms > 1 else peaks[:1])
    if terms > 1:
        seeds += list(alias_seeds(peaks[:2]))
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
        # 2P up to twice the longest period, if it repeats min_cycles times (seeds at P all do)
        worth_it = (odd_share >= MIN_ODD_SHARE) & (f2 >= fmin / 2) & (seeds / 2 >= f_repeats)
        # the daily aliases of a repeating peak need not repeat themselves
        bic_1 = np.where(seeds >= f_repeats, chi2_1 / scale + p1 * log_n, np.inf)
        bic_2 = np.where(worth_it, chi2_2 / scale + p2 * log_n, np.inf)
        return np.stack([f1, f2]), np.stack([bic_1, bic_2]), np.stack([f1, 2 * f2])

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
    peak_power = float(harmonic.power(all_bands, np.array([base[chosen]]))[0])
    if peak_freq[0] < f_repeats and not significant(p, peak_power):
        # nothing that repeats stands out: the strongest peak, slow as it is, says more (a trend)
        slow_power = float(harmonic.power(all_bands, peak_freq[:1])[0])
        return Choice(float(peak_freq[0]), slow_power, float(f_best)), evaluations
    return Choice(float(f_best), peak_power, runner), evaluations


def refit_bands(bands: list, harmonic_terms: int) -> list:
    """The bands the refit uses: those with 3 points per parameter of the densest band's 2P model.

    A band of a few points (6-30 V epochs beside 50 I) would cap every band at 1-2 harmonics, underfit
    a Cepheid's shape and let the 2P model win; it constrains the shared frequency little anyway. All
    bands when none qualifies."""
    terms = supported_terms(max(len(t) for t, _, _ in bands), harmonic_terms)
    kept = [band for band in bands if len(band[0]) >= 3 * (4 * terms + 1)]
    return kept or bands


def supported_terms(n_points: int, harmonic_terms: int) -> int:
    """Harmonics (1 to `harmonic_terms`) a band of n_points supports: at least 3 points per parameter of
    its 2P model (4·terms + 1: offset, and 2·terms harmonics at f/2)."""
    return max(1, min(harmonic_terms, (n_points // 3 - 1) // 4))


def significant(p: Prepared, power: float) -> bool:
    """Whether a peak of this power has a Baluev false-alarm probability below SIGNIFICANT on the searched
    grid (the probability the published result carries)."""
    return bool(harmonic.peak_false_alarm_probability([p], [power])[0] < SIGNIFICANT)


def alias_seeds(peaks: np.ndarray) -> np.ndarray:
    """|f + k·d| for each peak f, k in DAILY_ALIASES and d a solar or sidereal day [cycles/day]: a nightly
    cadence puts alias peaks exactly there, as accurately as f itself."""
    shifts = np.multiply.outer(DAILY_ALIASES, DAY_LENGTHS).ravel()
    return np.abs(np.add.outer(peaks, shifts)).ravel()
