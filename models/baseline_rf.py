"""Random-forest baseline on hand-made periodic features of the same folded windows the networks see.

The iTCN paper compares against a random forest on features of the folded light curve; this is that
baseline, built from `Windows` alone so both sides see identical inputs (same period, same points).
Features per window (FEATURE_NAMES): log10 P, mean and std mag, points, amplitude (5–95 percentile range
in mag), skew, kurtosis, percentiles of the standardised mags, share of points brighter than the mean,
median σ, and a 4-harmonic Fourier fit of the folded curve (amplitudes A_k in mag, ratios R_k1, relative
phases φ_k1 = φ_k − kφ_1 mod 2π as cos/sin, so the fold's start phase drops out) with its reduced χ².
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats
from sklearn.ensemble import RandomForestClassifier

from models.windows import Windows

N_HARMONICS = 4
PERCENTILES = (5, 25, 50, 75, 95)
FEATURE_NAMES = (
    "log10_period",
    "mean_mag",
    "std_mag",
    "n_points",
    "amplitude_mag",
    "skew",
    "kurtosis",
    *(f"p{p}" for p in PERCENTILES),
    "brighter_share",
    "median_sigma",
    *(f"A{k}" for k in range(1, N_HARMONICS + 1)),
    *(f"R{k}1" for k in range(2, N_HARMONICS + 1)),
    *(f"{f}_phi{k}1" for k in range(2, N_HARMONICS + 1) for f in ("cos", "sin")),
    "fourier_chi2",
)


def fourier_fit(
    phase: np.ndarray, mag: np.ndarray, sigma: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """Weighted least squares of mag = c + Σ_k a_k cos(2πkφ) + b_k sin(2πkφ); (amplitudes, phases, χ²_red)."""
    k = np.arange(1, N_HARMONICS + 1)
    angle = 2 * np.pi * phase[:, None] * k[None, :]
    design = np.column_stack([np.ones_like(phase), np.cos(angle), np.sin(angle)])
    weight = 1.0 / np.maximum(sigma, 1e-3)
    coef, *_ = np.linalg.lstsq(design * weight[:, None], mag * weight, rcond=None)
    a, b = coef[1 : 1 + N_HARMONICS], coef[1 + N_HARMONICS :]
    residual = (mag - design @ coef) * weight
    dof = max(len(mag) - design.shape[1], 1)
    return np.hypot(a, b), np.arctan2(-b, a), float(residual @ residual / dof)


def window_features(windows: Windows) -> np.ndarray:
    """(n, len(FEATURE_NAMES)) float64 features, one row per window (only its real points are used)."""
    rows = np.zeros((len(windows), len(FEATURE_NAMES)))
    for i in range(len(windows)):
        k = int(windows.lengths[i])
        dphase, m, sigma = (windows.x[i, :k, c].astype(np.float64) for c in range(3))
        mean_mag, std_mag, log_period = (float(v) for v in windows.aux[i])
        phase = np.cumsum(dphase) % 1.0
        amplitudes, phases, chi2 = fourier_fit(phase, m, sigma)
        a1 = max(amplitudes[0], 1e-9)
        relative = (phases[1:] - np.arange(2, N_HARMONICS + 1) * phases[0]) % (2 * np.pi)
        rows[i] = [
            log_period,
            mean_mag,
            std_mag,
            k,
            std_mag * float(np.subtract(*np.percentile(m, [95, 5]))),
            float(stats.skew(m)),
            float(stats.kurtosis(m)),
            *np.percentile(m, PERCENTILES),
            float(np.mean(m < 0)),  # magnitudes: smaller is brighter
            float(np.median(sigma)) * std_mag,
            *(amplitudes * std_mag),
            *(amplitudes[1:] / a1),
            *np.column_stack([np.cos(relative), np.sin(relative)]).ravel(),
            chi2,
        ]
    return np.nan_to_num(rows, nan=0.0, posinf=0.0, neginf=0.0)


class RandomForestBaseline:
    """sklearn forest over `window_features`; `predict_proba` gives (n, K) in `class_names` order."""

    def __init__(self, class_names: Sequence[str], n_estimators: int = 400, seed: int = 0) -> None:
        self.class_names = list(class_names)
        self.forest = RandomForestClassifier(
            n_estimators=n_estimators,
            class_weight="balanced_subsample",
            min_samples_leaf=1,
            n_jobs=1,
            random_state=seed,
        )

    def fit(self, windows: Windows) -> RandomForestBaseline:
        lookup = {name: i for i, name in enumerate(self.class_names)}
        y = np.array([lookup[str(label)] for label in windows.labels])
        self.forest.fit(window_features(windows), y)
        return self

    def predict_proba(self, windows: Windows) -> np.ndarray:
        proba = np.zeros((len(windows), len(self.class_names)))
        proba[:, self.forest.classes_] = self.forest.predict_proba(window_features(windows))
        return proba
