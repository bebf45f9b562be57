"""Random-forest baseline on hand-made periodic features of the same folded windows the networks see.

The iTCN paper compares against a random forest on features of the folded light curve; this is that
baseline, built from `Windows` alone so both sides see identical inputs (same period, same points).
Features per window (FEATURE_NAMES): log10 P, mean and std mag, points, amplitude (5–95 percentile range
in mag), skew, kurtosis, percentiles of the standardised mags, share of points brighter than the mean,
median σ, and a 4-harmonic Fourier fit of the folded curve (amplitudes A_k in mag, ratios R_k1, relative
phases φ_k1 = φ_k − kφ_1 mod 2π as cos/sin, so the fold's start phase drops out) with its reduced χ².

Two models share them: the random forest of the paper's comparison, and a gradient-boosted model
(`BoostedFeatureModel`) that is small on disk and better on the rare classes. Either can also train on
young-object crops of its windows (`young_crops`), the cut the networks' training applies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from models.train import subsample_window
from models.windows import Windows

N_HARMONICS = 4
# Window lengths of a young object (the bundles' buckets below L = 200).
YOUNG_BUCKETS = (50, 100, 150)
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


def young_crops(windows: Windows, buckets: Sequence[int] = YOUNG_BUCKETS, seed: int = 0) -> Windows:
    """Every window also cut to each bucket shorter than its length: a random subset of its points,
    re-standardised as `broker.folding` does (`models.train.subsample_window`), zero-padded to L.

    A window of 200 points gives three crops (50, 100, 150), one of 100 points one (50)."""
    rng = np.random.default_rng(seed)
    source, keeps = [], []
    for i, length in enumerate(windows.lengths):
        for keep in sorted(int(b) for b in buckets if b < length):
            source.append(i)
            keeps.append(keep)
    source = np.asarray(source, int)
    x = np.zeros((len(source), *windows.x.shape[1:]), np.float32)
    aux = np.zeros((len(source), windows.aux.shape[1]), np.float32)
    for row, (i, keep) in enumerate(zip(source, keeps, strict=True)):
        x[row, :keep], aux[row] = subsample_window(
            windows.x[i], windows.aux[i], int(windows.lengths[i]), keep, rng
        )
    labels = None if windows.labels is None else windows.labels[source]
    return Windows(x, aux, np.asarray(keeps, np.int32), windows.object_ids[source], labels)


class FeatureModel:
    """An sklearn classifier over `window_features`; `predict_proba` gives (n, K) in `class_names` order
    (a class absent from training gets probability 0). With `young_buckets`, `fit` adds `young_crops`."""

    def __init__(
        self, class_names: Sequence[str], estimator, young_buckets: Sequence[int] = (), seed: int = 0
    ) -> None:
        self.class_names = list(class_names)
        self.estimator = estimator
        self.young_buckets = tuple(young_buckets)
        self.seed = seed

    def fit(self, windows: Windows) -> FeatureModel:
        if self.young_buckets:
            windows = Windows.concatenate([windows, young_crops(windows, self.young_buckets, self.seed)])
        lookup = {name: i for i, name in enumerate(self.class_names)}
        y = np.array([lookup[str(label)] for label in windows.labels])
        self.estimator.fit(window_features(windows), y)
        return self

    def predict_proba(self, windows: Windows) -> np.ndarray:
        proba = np.zeros((len(windows), len(self.class_names)))
        proba[:, self.estimator.classes_] = self.estimator.predict_proba(window_features(windows))
        return proba


class RandomForestBaseline(FeatureModel):
    """The paper's random-forest comparison. Fully grown (min_samples_leaf=1, the default) on CRTS it
    pickles to ~87 MB; min_samples_leaf / max_depth bound it (60 trees, 40, 14: 3.8 MB)."""

    def __init__(
        self,
        class_names: Sequence[str],
        n_estimators: int = 400,
        seed: int = 0,
        min_samples_leaf: int = 1,
        max_depth: int | None = None,
        young_buckets: Sequence[int] = (),
    ) -> None:
        self.forest = RandomForestClassifier(
            n_estimators=n_estimators,
            class_weight="balanced_subsample",
            min_samples_leaf=min_samples_leaf,
            max_depth=max_depth,
            n_jobs=1,
            random_state=seed,
        )
        super().__init__(class_names, self.forest, young_buckets, seed)


class BoostedFeatureModel(FeatureModel):
    """Histogram gradient boosting with class_weight="balanced" (CRTS's rare classes weigh as much as its
    thousand-object ones), a fixed 200 rounds of 15-leaf trees: ~3.5 MB pickled for 10 classes, trained
    on young crops by default. CRTS validation objects, alone (README, Science): accuracy / balanced
    0.870 / 0.818, first 120 points 0.792 / 0.700 (the unbounded forest: 0.859 / 0.695, 0.792 / 0.609)."""

    def __init__(
        self,
        class_names: Sequence[str],
        max_iter: int = 200,
        seed: int = 0,
        young_buckets: Sequence[int] = YOUNG_BUCKETS,
    ) -> None:
        booster = HistGradientBoostingClassifier(
            class_weight="balanced",
            max_iter=max_iter,
            learning_rate=0.1,
            max_leaf_nodes=15,
            min_samples_leaf=20,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=seed,
        )
        super().__init__(class_names, booster, young_buckets, seed)
