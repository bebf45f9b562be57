"""Per-length temperature scaling of a classifier's probabilities (Guo et al. 2017), and its measures.

A window of n points gives logits z (K,); its probabilities are softmax(z / T_L), T_L the temperature of
the longest calibrated window length L <= n (the shortest when none fits), as the novelty tables are
chosen. T > 1 softens over-confident short windows; the argmax of a window never changes. Pure numpy:
both serving engines apply it to their logits.

In the classifier bundle's metadata.json, under "metadata" → "temperature" (written by
`models.calibration_fit`): {"by_length": {"50": T, ...}, "split", "n_windows", "nll_before", "nll_after"}.
A bundle without it is served at T = 1 (its probabilities as before).
"""

from __future__ import annotations

import numpy as np

SECTION = "temperature"
ECE_BINS = 15


class TemperatureTable:
    """{window length: T}; `scale(length)` is the T of the longest calibrated length <= length."""

    def __init__(self, by_length: dict) -> None:
        self.by_length = {int(k): float(v) for k, v in by_length.items()}
        if any(not np.isfinite(t) or t <= 0 for t in self.by_length.values()):
            raise ValueError(f"temperatures must be finite and > 0, got {self.by_length}")
        self._lengths = np.array(sorted(self.by_length), int)

    def scale(self, length: int) -> float:
        if not self.by_length:
            return 1.0
        fitting = self._lengths[self._lengths <= length]
        return self.by_length[int(fitting[-1] if fitting.size else self._lengths[0])]

    def scales(self, lengths: np.ndarray) -> np.ndarray:
        """(n,) window lengths → (n,) temperatures."""
        return np.array([self.scale(int(n)) for n in np.asarray(lengths)], np.float64)


def table_from_metadata(metadata: dict) -> TemperatureTable | None:
    """The bundle metadata's temperature table, None for a bundle fitted before (served at T = 1)."""
    section = metadata.get(SECTION)
    return TemperatureTable(section["by_length"]) if section else None


def softmax(logits: np.ndarray, temperature: float | np.ndarray = 1.0) -> np.ndarray:
    """(n, K) logits → (n, K) float64 probabilities of logits / T (T scalar or (n,))."""
    scaled = np.asarray(logits, np.float64) / np.reshape(np.asarray(temperature, np.float64), (-1, 1))
    e = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def uncalibrated(proba: np.ndarray, temperatures: np.ndarray) -> np.ndarray:
    """The T = 1 probabilities behind (n, K) tempered ones, T (n,): log p = z/T − c, so
    softmax(T log p) = softmax(z)."""
    log_p = np.log(np.clip(np.asarray(proba, np.float64), 1e-300, None))
    return softmax(log_p * np.reshape(temperatures, (-1, 1)))


def nll(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood [nats] of integer labels y (n,) under (n, K) probabilities."""
    picked = np.asarray(proba, np.float64)[np.arange(len(y)), np.asarray(y, int)]
    return float(-np.mean(np.log(np.clip(picked, 1e-300, None)))) if len(y) else float("nan")


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE: |accuracy − confidence| of the top class over equal-width confidence bins, weighted by count."""
    proba = np.asarray(proba, np.float64)
    if not len(proba):
        return float("nan")
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == np.asarray(y, int)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        mask = bins == b
        total += mask.sum() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total / len(proba))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T minimising the NLL of softmax(logits / T) on (n, K) logits and (n,) integer labels."""
    from scipy.optimize import minimize_scalar

    logits, y = np.asarray(logits, np.float64), np.asarray(y, int)
    result = minimize_scalar(
        lambda log_t: nll(softmax(logits, np.exp(log_t)), y), bounds=(-3.0, 3.0), method="bounded"
    )
    return float(np.exp(result.x))
