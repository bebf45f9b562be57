"""Where a window sits in the period–amplitude plane, against the training objects: a novelty component.

Variable classes occupy their own regions of the period–amplitude (Bailey) diagram, and an object in a
region no training class fills is novel whatever its folded shape looks like to the classifier. RS CVn
stars, the unseen class of the CRTS set, are spotted binaries with periods of days and amplitudes of a
few tenths of a magnitude: their folds resemble eclipsing binaries', their place in this plane does not
(on the CRTS test split this score alone separates them with ROC AUC 0.879).

Each training object is one point, (log10 period, log10 window mag std), the means over its windows,
scaled by the training objects' spread; a window's score is the distance to its k-th nearest training
object. One point per object, not per window, so objects with many windows do not crowd the plane.
Pure numpy (both serving engines use it), reading only `Windows.aux`.
"""

from __future__ import annotations

import numpy as np

from models.windows import AUX

PERIOD_COLUMN = AUX.index("log10_period")
STD_COLUMN = AUX.index("std_mag")
FEATURES = ("log10_period", "log10_std_mag")
DEFAULT_K = 10
MIN_STD_MAG = 1e-3  # a flat window (std 0) sits at 1 mmag, not at -inf
CHUNK = 1024  # windows per (CHUNK, m) distance matrix: ~24 MB for m = 3,000 objects


def plane_points(aux: np.ndarray) -> np.ndarray:
    """(n, len(AUX)) window aux → (n, 2) points (log10 period [d], log10 std mag)."""
    aux = np.asarray(aux, np.float64)
    return np.c_[aux[:, PERIOD_COLUMN], np.log10(np.maximum(aux[:, STD_COLUMN], MIN_STD_MAG))]


class PeriodAmplitudeDensity:
    """k-th nearest training object in the scaled period–amplitude plane.

    bank: (m, 2) scaled object points; center, scale: (2,) the scaling (training objects' mean and std).
    """

    def __init__(self, bank: np.ndarray, center: np.ndarray, scale: np.ndarray, k: int = DEFAULT_K) -> None:
        bank = np.asarray(bank, np.float64)
        if bank.ndim != 2 or bank.shape[1] != len(FEATURES) or not 1 <= k <= len(bank):
            raise ValueError(f"need a (m, {len(FEATURES)}) bank with m >= k = {k}, got {bank.shape}")
        self.bank = bank
        self.center = np.asarray(center, np.float64)
        self.scale = np.asarray(scale, np.float64)
        self.k = int(k)

    @classmethod
    def fit(cls, aux: np.ndarray, object_ids: np.ndarray, k: int = DEFAULT_K) -> PeriodAmplitudeDensity:
        """From the training windows' aux and object ids: one point per object (its windows' mean)."""
        _, group = np.unique(np.asarray(object_ids), return_inverse=True)
        counts = np.bincount(group)
        windows = plane_points(aux)
        objects = np.stack([np.bincount(group, windows[:, j]) / counts for j in range(windows.shape[1])], 1)
        center = objects.mean(axis=0)
        scale = np.maximum(objects.std(axis=0), 1e-6)
        return cls((objects - center) / scale, center, scale, min(k, len(objects)))

    def score(self, aux: np.ndarray) -> np.ndarray:
        """(n, len(AUX)) window aux → (n,) distance to the k-th nearest training object."""
        points = (plane_points(aux) - self.center) / self.scale
        out = np.empty(len(points))
        bank_sq = (self.bank**2).sum(axis=1)
        for start in range(0, len(points), CHUNK):
            chunk = points[start : start + CHUNK]
            squared = (chunk**2).sum(axis=1)[:, None] + bank_sq[None] - 2.0 * chunk @ self.bank.T
            nearest = np.partition(squared, self.k - 1, axis=1)[:, self.k - 1]
            out[start : start + len(chunk)] = np.sqrt(np.maximum(nearest, 0.0))
        return out

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}bank": self.bank, f"{prefix}center": self.center, f"{prefix}scale": self.scale}

    @classmethod
    def from_arrays(cls, arrays, prefix: str, k: int) -> PeriodAmplitudeDensity:
        return cls(arrays[f"{prefix}bank"], arrays[f"{prefix}center"], arrays[f"{prefix}scale"], k)


def tail(score: np.ndarray, quantiles: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """-log(1 - F(score)), F the distribution the (Q,) quantile table describes: a common scale on which
    two novelty scores add (Fisher's way of joining p-values); `floor` caps it past the table's top."""
    grid = np.linspace(0.0, 1.0, len(quantiles))
    below = np.interp(np.asarray(score, np.float64), quantiles, grid)
    return -np.log(np.maximum(1.0 - below, floor))
