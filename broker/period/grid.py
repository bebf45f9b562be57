"""Inputs prepared once at the public edge: frequency grids, centred magnitudes, per-band series.

Frequency grid (cycles/day): f from 1/min(max_period_days, baseline) to 1/min_period_days with the native
step 1/(oversampling·baseline). When that needs more than `max_frequencies` points the step is widened to
fit (and the best peak refined on the native step), so long baselines cost bounded time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from broker.period.settings import (
    SKIP_CONSTANT,
    SKIP_SHORT_BASELINE,
    SKIP_TOO_FEW_POINTS,
    PeriodSearchConfig,
)
from models.lightcurve import LightCurve


@dataclass(frozen=True)
class FrequencyGrid:
    """Regular grid f0 + df·arange(n) [cycles/day]."""

    f0: float
    df: float
    n: int

    @property
    def fmax(self) -> float:
        return self.f0 + self.df * (self.n - 1)

    def frequencies(self) -> np.ndarray:
        return self.f0 + self.df * np.arange(self.n)


@dataclass(frozen=True)
class Series:
    """One single-band series as engines see it: float64 (n,) arrays, sorted t, and its grid."""

    t: np.ndarray
    y: np.ndarray
    dy: np.ndarray
    grid: FrequencyGrid


@dataclass(frozen=True)
class Prepared:
    """One light curve, checked and converted once.

    y: (n,) magnitudes, bands centred (centre mode) or raw (per-band mode); band_index: (n,) int in
    [0, n_bands) (all 0 in centre mode); grid: the searched grid; native_df: 1/(oversampling·baseline);
    y_centred: `centre_bands` magnitudes (= y in centre mode), for a coarse pass that only nominates peaks.
    """

    t: np.ndarray
    y: np.ndarray
    dy: np.ndarray
    band_index: np.ndarray
    n_bands: int
    grid: FrequencyGrid
    native_df: float
    y_centred: np.ndarray

    def band_series(self, grid: FrequencyGrid) -> list[Series]:
        """One Series per band with at least 3 points and non-constant magnitudes, on `grid`."""
        if self.n_bands == 1:
            return [Series(self.t, self.y, self.dy, grid)]
        out = []
        for b in range(self.n_bands):
            mask = self.band_index == b
            if mask.sum() >= 3 and np.ptp(self.y[mask]) > 0:
                out.append(Series(self.t[mask], self.y[mask], self.dy[mask], grid))
        return out


def centre_bands(lc: LightCurve) -> np.ndarray:
    """(n,) float64 magnitudes with each band's median removed and the fullest band's median added back.

    Puts bands on a common zero point so one periodogram (or one folded window) sees one curve; the
    fullest band (ties: first name in sorted order) keeps its level so magnitudes stay physical.
    """
    mag = np.asarray(lc.mag, dtype=np.float64)
    bands = np.asarray(lc.band).astype(str)
    names, counts = np.unique(bands, return_counts=True)
    if len(names) <= 1:
        return mag.copy()
    centred = mag.copy()
    medians = {}
    for name in names:
        mask = bands == name
        medians[name] = float(np.median(mag[mask]))
        centred[mask] -= medians[name]
    return centred + medians[names[int(np.argmax(counts))]]


def frequency_grid(baseline_days: float, config: PeriodSearchConfig) -> tuple[FrequencyGrid, float]:
    """(grid, native step): grid capped at config.max_frequencies points; native step 1/(oversampling·T)."""
    native_df = 1.0 / (config.oversampling * baseline_days)
    f0 = 1.0 / min(config.max_period_days, baseline_days)
    f1 = 1.0 / config.min_period_days
    n = math.floor((f1 - f0) / native_df) + 1
    if n <= config.max_frequencies:
        return FrequencyGrid(f0, native_df, n), native_df
    return FrequencyGrid(f0, (f1 - f0) / (config.max_frequencies - 1), config.max_frequencies), native_df


def prepare(lc: LightCurve, config: PeriodSearchConfig) -> tuple[Prepared | None, str | None]:
    """(prepared curve, None) or (None, skip reason) for one light curve."""
    if len(lc) < config.min_points:
        return None, SKIP_TOO_FEW_POINTS
    t = np.ascontiguousarray(lc.mjd, dtype=np.float64)
    baseline = float(t[-1] - t[0])
    if not baseline > config.min_period_days:
        return None, SKIP_SHORT_BASELINE
    y_centred = centre_bands(lc)
    if config.multiband == "centre":
        y, band_index, n_bands = y_centred, np.zeros(len(t), dtype=np.intp), 1
    else:
        y = np.array(lc.mag, dtype=np.float64)
        names, band_index = np.unique(np.asarray(lc.band).astype(str), return_inverse=True)
        n_bands = len(names)
        if n_bands > 1 and all(np.ptp(y[band_index == b]) == 0 for b in range(n_bands)):
            return None, SKIP_CONSTANT
    if np.ptp(y) == 0.0:
        return None, SKIP_CONSTANT
    grid, native_df = frequency_grid(baseline, config)
    dy = np.ascontiguousarray(lc.magerr, dtype=np.float64)
    y, y_centred = np.ascontiguousarray(y), np.ascontiguousarray(y_centred)
    return Prepared(t, y, dy, band_index, n_bands, grid, native_df, y_centred), None
