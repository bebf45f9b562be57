"""Fit a classifier bundle's per-length temperatures (`models.calibration`) on its calibration split.

The calibration split is carved out of the training objects, so early stopping never saw it (bundles
trained before it existed use their validation split). For each bucket length L (50/100/150/200), its
windows holding >= L points are cut to L points as training cuts them (`models.train.batch_arrays`), and
T_L minimises their NLL. Seconds, no gradient through the network: the logits are computed once. Called by
`varstream fit-novelty-head` with the head.
"""

from __future__ import annotations

import numpy as np
import torch

from models.bundle import Bundle, resolve_device
from models.calibration import SECTION, expected_calibration_error, fit_temperature, nll, softmax
from models.itcn import window_tensors
from models.post_hoc_cuts import cut_batches, cut_lengths
from models.windows import Windows

MAX_WINDOWS_PER_LENGTH = 4000
MIN_WINDOWS_PER_LENGTH = 20  # fewer: that length takes the temperature of the next shorter one (or T = 1)


@torch.inference_mode()
def cut_logits(
    model: torch.nn.Module, windows: Windows, length: int, rng, max_windows: int, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """(logits (n, K), window indices (n,)) of up to `max_windows` windows cut to `length` points."""
    index, batches = cut_batches(windows, length, rng, max_windows)
    parts = [model(*window_tensors(x, aux, device)).double().cpu().numpy() for x, aux in batches]
    return (np.concatenate(parts) if parts else np.zeros((0, 0))), index


def fit_temperatures(
    bundle: Bundle, calibration: Windows, seed: int = 0, device: str = "cpu", split: str = "val"
) -> dict:
    """The metadata "temperature" section of `bundle` fitted on labelled `calibration` windows.

    Lengths with fewer than MIN_WINDOWS_PER_LENGTH windows get no entry; with none at all (a toy split)
    "by_length" is empty and the bundle is served at T = 1.
    """
    if bundle.kind != "classifier":
        raise ValueError(f"temperatures belong to a classifier bundle, got a {bundle.kind!r} bundle")
    labels = np.asarray(calibration.labels).astype(str)
    known = np.isin(labels, bundle.class_names)
    if not known.any():
        raise ValueError("no calibration windows of the bundle's classes")
    calibration = calibration.subset(known)
    lookup = {name: i for i, name in enumerate(bundle.class_names)}
    y_all = np.array([lookup[name] for name in labels[known]])
    target = str(resolve_device(device))
    home = next(bundle.model.parameters()).device
    model = bundle.model.to(target).eval()
    rng = np.random.default_rng(seed)
    by_length, per_length = {}, {}
    for length in cut_lengths(bundle.window):
        logits, index = cut_logits(model, calibration, length, rng, MAX_WINDOWS_PER_LENGTH, target)
        if len(index) < MIN_WINDOWS_PER_LENGTH:
            continue
        y = y_all[index]
        t = fit_temperature(logits, y)
        before, after = softmax(logits), softmax(logits, t)
        by_length[str(length)] = round(t, 4)
        per_length[str(length)] = {
            "n_windows": len(index),
            "nll_before": round(nll(before, y), 4),
            "nll_after": round(nll(after, y), 4),
            "ece_before": round(expected_calibration_error(before, y), 4),
            "ece_after": round(expected_calibration_error(after, y), 4),
        }
    model.to(home)
    return {
        "by_length": by_length,
        "split": split,
        "method": f"temperature scaling per window length, NLL of {split} windows cut to each length",
        "seed": seed,
        "windows": per_length,
    }


def attach(bundle: Bundle, section: dict) -> None:
    """Store the fitted section in the bundle's metadata (written by `save_bundle`)."""
    bundle.metadata[SECTION] = section
