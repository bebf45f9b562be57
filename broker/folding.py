"""Cut a light curve into phase-folded windows: the one input format of the networks (`models.windows`).

Policy (the same at training and at inference):

1. Multiband light curves are put on one zero point: each band's median is subtracted and the median of
   the band with most points added back (`broker.period.centre_bands`, the same centring the period
   search uses).
2. Points stay in temporal order; windows are cut in time, never across a shuffle (Zhang & Bloom 2020).
   - n >= L: consecutive segments of L points; when the remainder r = n mod L is >= min_remainder, one
     more window of the last L points (it overlaps the previous one, so no late point is lost).
   - n < L: with `short_window = "bucket"` (the first bundles), one window of the largest bucket b <= n,
     made of the b most recent points; with "all", one window of all n points (a young object's window
     keeps every point it has). None when n < min_length (an empty `Windows`; the caller counts the skip).
3. Each window is folded with phase φ = ((t − t_first) / P) mod 1 (t_first: the window's first time) and
   sorted by phase.
4. Channels per step (Δφ, m, σ): Δφ_i = φ_i − φ_{i−1}, and the first step wraps around, Δφ_0 = φ_0 + 1 −
   φ_last, so Δφ sums to 1 and any cyclic shift of the sequence is again a valid window (the iTCN's
   invariance); m = (mag − mean) / std and σ = magerr / std, with mean and std (ddof 0, floored at
   1e-3 mag) of the window.
5. aux = (mean mag, std mag, log10 P [days]); x is zero-padded to L and `lengths` gives the real points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from broker.errors import VarstreamError
from broker.period import centre_bands
from models.lightcurve import LightCurve
from models.windows import AUX, CHANNELS, Windows

MIN_STD_MAG = 1e-3
SHORT_WINDOWS = ("bucket", "all")  # WindowConfig.short_window


class FoldingError(VarstreamError, ValueError):
    """Windows cannot be made: bad window settings or a period that is not a positive finite number."""


@dataclass(frozen=True)
class WindowConfig:
    """Window cutting settings; part of every window-cache key.

    length: L, points per window (x is padded to it). min_length: fewer points give no window.
    buckets: window lengths training crops to, and (short_window "bucket") the lengths a light curve
    shorter than L is cut to (ascending, largest <= L).
    min_remainder: leftover points (n mod L) that earn one extra window of the last L points.
    short_window: "bucket" (the largest bucket <= n of the most recent points) or "all" (all n points) for
    a light curve of n < L points.
    """

    length: int = 200
    min_length: int = 50
    buckets: tuple[int, ...] = (50, 100, 150, 200)
    min_remainder: int = 50
    short_window: str = "bucket"

    def __post_init__(self) -> None:
        buckets = tuple(int(b) for b in self.buckets)
        object.__setattr__(self, "buckets", buckets)  # a list from JSON/YAML would break equality and hashing
        if (
            not buckets
            or list(buckets) != sorted(set(buckets))
            or buckets[0] < 2
            or buckets[-1] > self.length
            or not buckets[0] <= self.min_length <= self.length
            or not 1 <= self.min_remainder <= self.length
        ):
            raise FoldingError(
                "need ascending unique buckets in [2, length], buckets[0] <= min_length <= length and "
                f"1 <= min_remainder <= length; got length={self.length}, min_length={self.min_length}, "
                f"buckets={buckets}, min_remainder={self.min_remainder}"
            )
        if self.short_window not in SHORT_WINDOWS:
            raise FoldingError(f"short_window must be one of {SHORT_WINDOWS}, got {self.short_window!r}")


def window_slices(n_points: int, config: WindowConfig) -> list[slice]:
    """Index ranges (into the time-ordered points) of the windows of a light curve with n_points."""
    length = config.length
    if n_points >= length:
        slices = [slice(start, start + length) for start in range(0, n_points - length + 1, length)]
        if n_points % length >= config.min_remainder:
            slices.append(slice(n_points - length, n_points))
        return slices
    if n_points < config.min_length:
        return []
    if config.short_window == "all":
        return [slice(0, n_points)]
    bucket = max(b for b in config.buckets if b <= n_points)
    return [slice(n_points - bucket, n_points)]


def fold_window(
    mjd: np.ndarray, mag: np.ndarray, magerr: np.ndarray, period_days: float
) -> tuple[np.ndarray, np.ndarray]:
    """(k, 3) float32 steps (Δφ, m, σ) sorted by phase, and (3,) float32 aux, for one window of k points."""
    phase = ((mjd - mjd[0]) / period_days) % 1.0
    order = np.argsort(phase, kind="stable")
    phase, mag, magerr = phase[order], mag[order], magerr[order]
    dphase = np.diff(phase, prepend=phase[-1] - 1.0)
    mean = float(np.mean(mag))
    std = max(float(np.std(mag)), MIN_STD_MAG)
    steps = np.stack([dphase, (mag - mean) / std, magerr / std], axis=1).astype(np.float32)
    aux = np.array([mean, std, np.log10(period_days)], dtype=np.float32)
    return steps, aux


def _fold_lightcurve(lc: LightCurve, period_days: float, config: WindowConfig):
    """(x (k, L, 3), aux (k, 3), lengths (k,)) for one light curve."""
    if not (np.isfinite(period_days) and period_days > 0):
        raise FoldingError(f"period must be a positive finite number of days, got {period_days!r}")
    mag = centre_bands(lc)
    slices = window_slices(len(lc), config)
    x = np.zeros((len(slices), config.length, len(CHANNELS)), np.float32)
    aux = np.zeros((len(slices), len(AUX)), np.float32)
    lengths = np.zeros(len(slices), np.int32)
    for i, part in enumerate(slices):
        steps, aux[i] = fold_window(lc.mjd[part], mag[part], lc.magerr[part], period_days)
        x[i, : len(steps)] = steps
        lengths[i] = len(steps)
    return x, aux, lengths


def make_windows(
    lc: LightCurve, period_days: float, object_id: str, label: str | None, config: WindowConfig
) -> Windows:
    """Folded windows of one light curve (possibly none); labels set when `label` is given."""
    x, aux, lengths = _fold_lightcurve(lc, period_days, config)
    object_ids = np.full(len(x), object_id, dtype=object)
    labels = None if label is None else np.full(len(x), label, dtype=object)
    return Windows(x=x, aux=aux, lengths=lengths, object_ids=object_ids, labels=labels)


def make_windows_batch(
    lcs: Sequence[LightCurve],
    periods: Sequence[float],
    ids: Sequence[str],
    labels: Sequence[str | None] | None,
    config: WindowConfig,
) -> Windows:
    """Windows of many light curves, stacked in input order. With `labels` given, every window carries
    its object's label (None stays None); with `labels=None` the result has no labels."""
    if labels is None:
        labels = [None] * len(lcs)
        keep_labels = False
    else:
        keep_labels = True
    if not len(lcs) == len(periods) == len(ids) == len(labels):
        raise FoldingError(
            f"need one period, id and label per light curve: {len(lcs)} light curves, "
            f"{len(periods)} periods, {len(ids)} ids, {len(labels)} labels"
        )
    parts = [_fold_lightcurve(lc, float(p), config) for lc, p in zip(lcs, periods, strict=True)]
    counts = [len(part[0]) for part in parts]
    if not parts or sum(counts) == 0:
        empty = Windows.empty(config.length)
        if keep_labels:
            empty.labels = np.zeros(0, dtype=object)
        return empty
    return Windows(
        x=np.concatenate([part[0] for part in parts]),
        aux=np.concatenate([part[1] for part in parts]),
        lengths=np.concatenate([part[2] for part in parts]),
        object_ids=np.repeat(np.array(list(ids), dtype=object), counts),
        labels=np.repeat(np.array(list(labels), dtype=object), counts) if keep_labels else None,
    )
