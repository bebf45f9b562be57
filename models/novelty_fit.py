"""Fit a classifier bundle's k-NN novelty head (`models.novelty_head`) after training: seconds, no gradient.

The bank is the unit embeddings of the training windows (each at its own length). The percentile tables
come from other windows, the validation split's, each cut to every bucket length as training cuts windows
(`models.train.batch_arrays`): scores of the bank's own windows would count themselves among their
neighbours and sit low, so thresholds drawn from them would flag too many known objects.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import torch

from models.bundle import Bundle, resolve_device
from models.bundle_format import N_ENERGY_QUANTILES, length_groups
from models.itcn import window_tensors
from models.novelty_head import DEFAULT_K, METHOD, KnnNoveltyHead, unit_rows
from models.train import batch_arrays
from models.windows import Windows

MAX_CALIBRATION_WINDOWS = 4000  # per length
log = logging.getLogger(__name__)


@torch.inference_mode()
def embed_arrays(model: torch.nn.Module, x: np.ndarray, aux: np.ndarray, device: str = "cpu") -> np.ndarray:
    """(n, length, 3) windows of one true length and (n, 3) aux → (n, hidden) float64 embeddings."""
    model.eval()
    xt, auxt = window_tensors(x, aux, device)
    return model.embed(xt, auxt)[0].double().cpu().numpy()


def embed_windows(model: torch.nn.Module, windows: Windows, device: str = "cpu", batch_size: int = 512):
    """(n, hidden) float64 embeddings of windows of any lengths, in input order."""
    out = None
    for length, index in length_groups(np.asarray(windows.lengths), batch_size):
        part = embed_arrays(model, windows.x[index, :length], windows.aux[index], device)
        out = np.zeros((len(windows), part.shape[1])) if out is None else out
        out[index] = part
    if out is None:
        raise ValueError("no windows to embed")
    return out


def cut_embeddings(
    model: torch.nn.Module, windows: Windows, length: int, rng, max_windows: int, device: str = "cpu"
) -> np.ndarray:
    """Embeddings of up to `max_windows` windows holding >= `length` points, each cut to `length` points."""
    index = np.flatnonzero(np.asarray(windows.lengths) >= length)
    if len(index) > max_windows:
        index = np.sort(rng.choice(index, max_windows, replace=False))
    parts = []
    for start in range(0, len(index), 512):
        x, aux = batch_arrays(windows, index[start : start + 512], length, rng)
        parts.append(embed_arrays(model, x, aux, device))
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def fit_knn_head(
    bundle: Bundle,
    train: Windows,
    calibration: Windows,
    k: int = DEFAULT_K,
    seed: int = 0,
    device: str = "cpu",
    calibration_name: str = "val",
) -> KnnNoveltyHead:
    """The k-NN head of a classifier bundle: bank from `train`, per-length percentiles from `calibration`.

    train/calibration: labelled windows of the bundle's training and validation splits (by object).
    """
    if bundle.kind != "classifier":
        raise ValueError(f"a novelty head belongs to a classifier bundle, got a {bundle.kind!r} bundle")
    if not len(train) or not len(calibration):
        raise ValueError("a novelty head needs training and calibration windows")
    if len(train) < k:  # a toy training set (tests, smoke runs): the farthest training window instead
        log.warning(
            "novelty head: k = %d but only %d training windows; using k = %d", k, len(train), len(train)
        )
        k = len(train)
    started = time.perf_counter()
    target = str(resolve_device(device))
    home = next(bundle.model.parameters()).device
    model = bundle.model.to(target).eval()
    rng = np.random.default_rng(seed)
    bank = unit_rows(embed_windows(model, train, target))
    info = {"name": f"{bundle.name}-{METHOD}{k}", "version": bundle.version}
    # A placeholder table lets the head score the calibration windows; the real tables replace it.
    head = KnnNoveltyHead(bank, k, np.zeros(2), {}, info)
    grid = np.linspace(0.0, 100.0, N_ENERGY_QUANTILES)
    scores = head.score(embed_windows(model, calibration, target))
    by_length = {}
    for length in _buckets(bundle):
        cut = cut_embeddings(model, calibration, length, rng, MAX_CALIBRATION_WINDOWS, target)
        if len(cut):
            by_length[length] = np.percentile(head.score(cut), grid)
    info |= {
        "embedding": "iTCN penultimate features mean-pooled over phases, scaled to unit length",
        "bank_windows": len(train),
        "calibration": {
            "split": calibration_name,
            "n_windows": len(calibration),
            "lengths": sorted(by_length),
            "max_windows_per_length": MAX_CALIBRATION_WINDOWS,
        },
        "seed": seed,
        "fit_seconds": round(time.perf_counter() - started, 2),
        "reference": "Sun, Ming, Zhu & Li 2022, Out-of-distribution detection with deep nearest neighbors",
    }
    model.to(home)
    return KnnNoveltyHead(bank, k, np.percentile(scores, grid), by_length, info)


def _buckets(bundle: Bundle) -> Sequence[int]:
    window = bundle.window
    return sorted({int(b) for b in [*window.get("buckets", []), window.get("length", 200)]})
