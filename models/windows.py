"""Phase-folded windows: the one input format of every network in `models`.

Built by `broker.folding` (from a light curve and the period the plugin's own search found) and consumed
by the iTCN/TCN/iResNet and AE-GMM bundles. Kept here so the networks never import the broker.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Per-step channels of `Windows.x`, in order.
CHANNELS = ("dphase", "mag", "magerr")
# Auxiliary per-window inputs of `Windows.aux`, in order.
AUX = ("mean_mag", "std_mag", "log10_period")


@dataclass
class Windows:
    """A stack of folded windows, zero-padded to a common length.

    x:          (n, L, 3) float32 — per step (Δphase to the previous point, standardised mag,
                magerr divided by the window's mag std), sorted by phase; steps >= lengths[i] are zero.
    aux:        (n, 3) float32 — window mean mag, window std mag, log10 period [days].
    lengths:    (n,) int32 — number of real points in each window (<= L).
    object_ids: (n,) object — the object each window came from (several windows per object are normal).
    labels:     (n,) object or None — class names when known (training, evaluation).
    """

    x: np.ndarray
    aux: np.ndarray
    lengths: np.ndarray
    object_ids: np.ndarray
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.x)
        if self.x.ndim != 3 or self.x.shape[2] != len(CHANNELS):
            raise ValueError(f"Windows.x must be (n, L, {len(CHANNELS)}), got {self.x.shape}")
        if self.aux.shape != (n, len(AUX)):
            raise ValueError(f"Windows.aux must be ({n}, {len(AUX)}), got {self.aux.shape}")
        if len(self.lengths) != n or len(self.object_ids) != n:
            raise ValueError("Windows.lengths and Windows.object_ids must have one entry per window")
        if self.labels is not None and len(self.labels) != n:
            raise ValueError("Windows.labels must have one entry per window")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def window_length(self) -> int:
        return int(self.x.shape[1])

    def subset(self, index) -> Windows:
        return Windows(
            x=self.x[index],
            aux=self.aux[index],
            lengths=self.lengths[index],
            object_ids=self.object_ids[index],
            labels=None if self.labels is None else self.labels[index],
        )

    @staticmethod
    def concatenate(parts: list[Windows]) -> Windows:
        """Stack window sets; all must share L. Labels survive only if every part has them."""
        if not parts:
            raise ValueError("nothing to concatenate")
        lengths = {p.window_length for p in parts}
        if len(lengths) != 1:
            raise ValueError(f"cannot concatenate windows of different L: {sorted(lengths)}")
        has_labels = all(p.labels is not None for p in parts)
        return Windows(
            x=np.concatenate([p.x for p in parts]),
            aux=np.concatenate([p.aux for p in parts]),
            lengths=np.concatenate([p.lengths for p in parts]),
            object_ids=np.concatenate([p.object_ids for p in parts]),
            labels=np.concatenate([p.labels for p in parts]) if has_labels else None,
        )

    @staticmethod
    def empty(window_length: int) -> Windows:
        return Windows(
            x=np.zeros((0, window_length, len(CHANNELS)), np.float32),
            aux=np.zeros((0, len(AUX)), np.float32),
            lengths=np.zeros(0, np.int32),
            object_ids=np.zeros(0, object),
            labels=None,
        )
