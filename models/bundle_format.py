"""The bundle folder format without torch: file names, metadata reading, length grouping, energy ranking.

Shared by the torch bundle (`models.bundle`, training and evaluation) and the ONNX Runtime serving bundle
(`models.onnx_serving`, the plugin), so the plugin's import tree never needs torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
ANY_LENGTH = "any"  # key of an ONNX classifier export whose length axis is dynamic: one graph, every length
KINDS = ("classifier", "novelty")
WEIGHTS_FILE = "weights.pt"
METADATA_FILE = "metadata.json"
N_ENERGY_QUANTILES = 1001  # percentiles 0, 0.1, ..., 100 of the training energies

BUNDLES_DIR = Path(__file__).resolve().parent / "bundles"
# The served pair: the contrastive-trained iTCN classifies; the cross-entropy iTCN's k-NN head scores
# novelty (its thresholds keep the false-alarm rate; models.head_novelty). The AE-GMM is served by path.
DEFAULT_CLASSIFIER_BUNDLE = BUNDLES_DIR / "crts-itcn-supcon"
DEFAULT_NOVELTY_BUNDLE = BUNDLES_DIR / "crts-itcn"
AEGMM_BUNDLE = BUNDLES_DIR / "crts-aegmm"

# Padded batch sizes on an accelerator: a few fixed shapes, so kernels are planned once per shape.
PADDED_BATCH_SIZES = (16, 64, 256, 1024)


class BundleFormatError(ValueError):
    """A bundle folder is missing, incomplete or inconsistent; the message names the path and the field.

    `models` cannot import `broker.errors`; the runtime wraps this in its BundleError.
    """


@dataclass
class Prediction:
    """proba: (n, K) float64 probabilities in `Bundle.class_names` order; energy: (n,) float64 AE-GMM
    energies or None; novelty_score: (n,) float64 scores of a classifier's novelty head or None."""

    proba: np.ndarray
    energy: np.ndarray | None = None
    novelty_score: np.ndarray | None = None


def read_document(path: str | Path) -> dict:
    """metadata.json of a bundle folder, checked for the format version and the fields every reader needs."""
    path = Path(path)
    meta_file = path / METADATA_FILE
    if not meta_file.is_file():
        raise BundleFormatError(f"bundle {path}: missing {METADATA_FILE}")
    try:
        document = json.loads(meta_file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise BundleFormatError(f"bundle {path}: cannot read {METADATA_FILE}: {err}") from err
    if document.get("format_version") != FORMAT_VERSION:
        raise BundleFormatError(
            f"bundle {path}: format_version {document.get('format_version')!r}, "
            f"this code reads {FORMAT_VERSION}"
        )
    for key in ("kind", "metadata", "class_names"):
        if key not in document:
            raise BundleFormatError(f"bundle {path}: {METADATA_FILE} lacks {key!r}")
    if document["kind"] not in KINDS:
        raise BundleFormatError(f"bundle {path}: kind must be one of {KINDS}, got {document['kind']!r}")
    return document


def check_lengths(lengths: np.ndarray, window_length: int) -> None:
    if len(lengths) and (lengths.min() < 1 or lengths.max() > window_length):
        raise ValueError(
            f"window lengths must be in 1..{window_length}, got {lengths.min()}..{lengths.max()}"
        )


def length_groups(lengths: np.ndarray, batch_size: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (true length, window indices) batches, each of one length and at most `batch_size` windows."""
    lengths = np.asarray(lengths)
    for length in np.unique(lengths):
        index = np.flatnonzero(lengths == length)
        for start in range(0, len(index), batch_size):
            yield int(length), index[start : start + batch_size]


def padded_size(n: int) -> int:
    """The smallest of PADDED_BATCH_SIZES that holds n windows (n itself beyond the largest)."""
    return next((size for size in PADDED_BATCH_SIZES if size >= n), n)


def pad_rows(index: np.ndarray) -> np.ndarray:
    """`index` extended to `padded_size(len(index))` by repeating its first entry (outputs are dropped)."""
    extra = padded_size(len(index)) - len(index)
    return np.concatenate([index, np.full(extra, index[0], index.dtype)]) if extra else index


class EnergyRanks:
    """Percentile (0–100) of energies among training energies, overall or per window length.

    quantiles: (N_ENERGY_QUANTILES,) training-energy quantiles; by_length: {length: quantiles} for
    training windows cut to that length (a short window has a higher energy than a full one, and
    ranked against full windows nearly every young object would look novel).
    """

    def __init__(self, quantiles: np.ndarray, by_length: dict | None = None) -> None:
        self.quantiles = np.asarray(quantiles, np.float64)
        self.by_length = {int(k): np.asarray(v, np.float64) for k, v in (by_length or {}).items()}
        self._calibrated = np.array(sorted(self.by_length), int)

    def table_for(self, length: int) -> np.ndarray:
        """The table of the longest calibrated length <= length (the shortest when none fits)."""
        if not self.by_length:
            return self.quantiles
        fitting = self._calibrated[self._calibrated <= length]
        return self.by_length[int(fitting[-1] if fitting.size else self._calibrated[0])]

    def percentile(self, energy: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """(n,) percentiles of (n,) energies; with (n,) `lengths`, each among its length's table.

        Vectorised over the batch: one interpolation per distinct length, not one per object.
        """
        energy = np.asarray(energy, np.float64)
        if lengths is None or not self.by_length:
            return _rank(energy, self.quantiles)
        lengths = np.broadcast_to(np.asarray(lengths), energy.shape)
        out = np.empty_like(energy)
        for length in np.unique(lengths):
            mask = lengths == length
            out[mask] = _rank(energy[mask], self.table_for(int(length)))
        return out


def _rank(energy: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    return np.interp(energy, quantiles, np.linspace(0.0, 100.0, len(quantiles)))


def energy_ranks(document: dict, path: str | Path) -> EnergyRanks | None:
    """The EnergyRanks of a novelty bundle's metadata document (None for a classifier)."""
    novelty = document.get("novelty") or {}
    if document["kind"] != "novelty":
        return None
    if "energy_quantiles" not in novelty:
        raise BundleFormatError(f"novelty bundle {path} lacks novelty.energy_quantiles")
    return EnergyRanks(novelty["energy_quantiles"], novelty.get("energy_quantiles_by_length"))
