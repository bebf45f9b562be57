"""Windows cut to shorter lengths for the fits made after training (per-length temperatures, novelty
tables): the lengths, and the cut batches, made as training cuts its crops (`models.train.batch_arrays`)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from models.train import batch_arrays
from models.windows import Windows


def cut_lengths(window: dict) -> list[int]:
    """The window lengths post-hoc fits cut windows to (temperatures, novelty tables): the buckets and the
    full length, ascending. A window takes the table of the longest cut length <= its own. (Cuts every 25
    points in between, for young windows of any length, changed nothing on validation: README.)"""
    return sorted({int(b) for b in [*window.get("buckets", []), window.get("length", 200)]})


def cut_batches(
    windows: Windows, length: int, rng, max_windows: int, batch: int = 512
) -> tuple[np.ndarray, Iterator[tuple[np.ndarray, np.ndarray]]]:
    """(window indices, batches of `batch_arrays`) for up to `max_windows` windows holding >= `length`
    points, each cut to `length` points as training cuts them (post-hoc fits on a trained bundle)."""
    index = np.flatnonzero(np.asarray(windows.lengths) >= length)
    if len(index) > max_windows:
        index = np.sort(rng.choice(index, max_windows, replace=False))
    starts = range(0, len(index), batch)
    return index, (batch_arrays(windows, index[s : s + batch], length, rng) for s in starts)
