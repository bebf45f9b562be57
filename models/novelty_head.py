"""Novelty head of a classifier bundle: distance to the k-th nearest training embedding (Sun et al. 2022).

The iTCN's penultimate features, mean-pooled over the phases (`PhaseClassifier.embed`, (n, hidden)), are
scaled to unit length; an object unlike every training class lies far from all training embeddings. The
score of a window is the Euclidean distance of its unit embedding to the k-th nearest unit embedding of
the training windows (Sun, Ming, Zhu & Li 2022, "Out-of-distribution detection with deep nearest
neighbors"). k is chosen on the validation split (`models.novelty_fit.select_k`; DEFAULT_K, their
CIFAR-10 setting, only when there is too little to choose on). An object's score is the mean of its
windows' scores, ranked among calibration windows cut to the object's window length, as the AE-GMM's
energy is.

Measured on the CRTS test split against the AE-GMM (README "Novelty"): ROC AUC 0.895 vs 0.791, p95
recall 0.591 vs 0.293 (k = 10, chosen on validation; k = 50, once chosen on test, gave 0.899 / 0.628).
Mahalanobis distance to class means with a tied covariance (Lee et al. 2018) on the same
embedding reached only 0.835.

Optionally joined with where the window sits in the period–amplitude plane against the training objects
(`PlaneComponent`, `models.period_amplitude`): both scores on a common -log(1 - F) scale, weighted by a
weight chosen leaving one class out on the calibration split. On the CRTS test split (README "Novelty")
this lifts the recall of the unseen RS CVn stars, which fold like eclipsing binaries but sit where no
trained class does.

Pure numpy, no torch: both serving engines score with it. On disk, in the classifier bundle folder:

    novelty_head.npz   bank (m, D) float32 unit embeddings of the training windows, quantiles (Q,) and
                       quantiles_L{length} (Q,) of the calibration windows' scores; with a plane
                       component also plane_bank (objects, 2), plane_center, plane_scale and the two
                       tail tables plane_embedding_quantiles, plane_quantiles (Q,)
    metadata.json      "novelty_head": method, k, name, version, calibration, weights_sha256 (the
                       classifier weights the bank was embedded with: a retrained classifier needs a refit),
                       period_amplitude (features, k, weight, its selection) when the plane is used
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from models.bundle_format import METADATA_FILE, WEIGHTS_FILE, BundleFormatError, EnergyRanks
from models.jsonio import json_default
from models.period_amplitude import FEATURES, PeriodAmplitudeDensity, tail

NOVELTY_HEAD_FILE = "novelty_head.npz"
SECTION = "novelty_head"
METHOD = "knn"
DEFAULT_K = 50
SCORE_CHUNK = 1024  # windows per distance matrix: (1024, m) float32, ~23 MB for m = 5,730
PLANE_SECTION = "period_amplitude"  # the head's metadata subsection of its plane component
PLANE_PREFIX = "plane_"  # its arrays in novelty_head.npz
REFIT_HINT = "varstream fit-novelty-head --bundle {path} --data FORMAT:PATH"


def unit_rows(embedding: np.ndarray) -> np.ndarray:
    """(n, D) → (n, D) float64 rows scaled to unit Euclidean length (zero rows stay zero)."""
    embedding = np.asarray(embedding, np.float64)
    norms = np.linalg.norm(embedding, axis=1, keepdims=True)
    return embedding / np.maximum(norms, 1e-12)


def weights_digest(folder: str | Path) -> str | None:
    """sha256 of the bundle's weights file, None when the folder has none (an ONNX-only copy)."""
    weights = Path(folder) / WEIGHTS_FILE
    return hashlib.sha256(weights.read_bytes()).hexdigest() if weights.is_file() else None


class PlaneComponent:
    """The period–amplitude density joined to the embedding distance (`models.period_amplitude`).

    Both scores become -log(1 - F) under their calibration windows' distributions (`tail`), and the
    window's score is (1 - weight) * embedding tail + weight * plane tail. weight is chosen on the
    calibration split (`models.novelty_fit.select_plane_weight`); 0 leaves the head without it.
    """

    def __init__(
        self,
        density: PeriodAmplitudeDensity,
        weight: float,
        embedding_quantiles: np.ndarray,
        plane_quantiles: np.ndarray,
        selection: dict | None = None,
    ) -> None:
        if not 0.0 < weight <= 1.0:
            raise BundleFormatError(f"period–amplitude weight must be in (0, 1], got {weight}")
        self.density = density
        self.weight = float(weight)
        self.embedding_quantiles = np.asarray(embedding_quantiles, np.float64)
        self.plane_quantiles = np.asarray(plane_quantiles, np.float64)
        self.selection = selection or {}

    def join(self, distance: np.ndarray, aux: np.ndarray) -> np.ndarray:
        plane = tail(self.density.score(aux), self.plane_quantiles)
        return (1.0 - self.weight) * tail(distance, self.embedding_quantiles) + self.weight * plane

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            **self.density.arrays(PLANE_PREFIX),
            f"{PLANE_PREFIX}embedding_quantiles": self.embedding_quantiles,
            f"{PLANE_PREFIX}quantiles": self.plane_quantiles,
        }

    def section(self) -> dict:
        return {
            "features": list(FEATURES),
            "k": self.density.k,
            "weight": self.weight,
            "objects": len(self.density.bank),
            "weight_selection": self.selection,
        }

    @classmethod
    def load(cls, arrays, section: dict) -> PlaneComponent:
        density = PeriodAmplitudeDensity.from_arrays(arrays, PLANE_PREFIX, int(section["k"]))
        return cls(
            density,
            float(section["weight"]),
            arrays[f"{PLANE_PREFIX}embedding_quantiles"],
            arrays[f"{PLANE_PREFIX}quantiles"],
            section.get("weight_selection"),
        )


class KnnNoveltyHead:
    """k-th nearest neighbour distance among unit training embeddings, with per-length percentile ranks.

    bank: (m, D) unit embeddings; quantiles: (Q,) calibration-score quantiles over all lengths;
    quantiles_by_length: {length: (Q,)}; info: the metadata section (name, version, k, calibration...).
    """

    def __init__(
        self,
        bank: np.ndarray,
        k: int,
        quantiles: np.ndarray,
        quantiles_by_length: dict[int, np.ndarray],
        info: dict,
        plane: PlaneComponent | None = None,
    ) -> None:
        bank = np.asarray(bank, np.float32)  # float32 distances: ~1e-7, and twice as fast as float64
        if bank.ndim != 2 or not 1 <= k <= len(bank):
            raise BundleFormatError(f"novelty head needs a (m, D) bank with m >= k = {k}, got {bank.shape}")
        self.bank = bank
        self.k = int(k)
        self.ranks = EnergyRanks(quantiles, quantiles_by_length)
        self.plane = plane
        self.info = {**info, "method": METHOD, "k": self.k}

    @property
    def name(self) -> str:
        return str(self.info.get("name", f"{METHOD}{self.k}"))

    @property
    def version(self) -> str:
        return str(self.info.get("version", "0"))

    @property
    def thresholds(self) -> dict[str, float]:
        """Scores at the 80th and 95th percentile of the calibration windows (all lengths)."""
        q = self.ranks.quantiles
        grid = np.linspace(0.0, 100.0, len(q))
        return {"p80": float(np.interp(80, grid, q)), "p95": float(np.interp(95, grid, q))}

    def score(self, embedding: np.ndarray, aux: np.ndarray | None = None) -> np.ndarray:
        """(n, D) embeddings (and (n, len(AUX)) aux) → (n,) novelty scores of the windows.

        Without a period–amplitude component: the distance of each unit embedding to its k-th nearest in
        the bank. With one, that distance and the window's plane score joined on a common scale.
        """
        distance = self.embedding_distance(embedding)
        if self.plane is None:
            return distance
        if aux is None:
            raise ValueError("this head also scores the period–amplitude plane: pass the windows' aux")
        return self.plane.join(distance, aux)

    def embedding_distance(self, embedding: np.ndarray) -> np.ndarray:
        """(n, D) embeddings → (n,) distance of each unit embedding to its k-th nearest in the bank."""
        if embedding.ndim != 2 or embedding.shape[1] != self.bank.shape[1]:
            raise ValueError(f"embeddings must be (n, {self.bank.shape[1]}), got {embedding.shape}")
        units = unit_rows(embedding).astype(np.float32)
        out = np.empty(len(units))
        for start in range(0, len(units), SCORE_CHUNK):
            chunk = units[start : start + SCORE_CHUNK]
            squared = np.maximum(2.0 - 2.0 * chunk @ self.bank.T, 0.0)  # |a − b|² of unit vectors
            out[start : start + len(chunk)] = np.sqrt(
                np.partition(squared, self.k - 1, axis=1)[:, self.k - 1]
            )
        return out

    def percentile(self, score: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """(n,) percentiles (0–100) of (n,) scores among calibration windows of each one's length."""
        return self.ranks.percentile(score, lengths)

    def save(self, folder: str | Path) -> dict:
        """Write novelty_head.npz and the metadata.json "novelty_head" section into a saved bundle folder."""
        folder = Path(folder)
        arrays = {"bank": self.bank.astype(np.float32), "quantiles": self.ranks.quantiles}
        arrays |= {f"quantiles_L{length}": table for length, table in self.ranks.by_length.items()}
        info = {k: v for k, v in self.info.items() if k != PLANE_SECTION}
        if self.plane is not None:
            arrays |= self.plane.arrays()
            info[PLANE_SECTION] = self.plane.section()
        np.savez_compressed(folder / NOVELTY_HEAD_FILE, **arrays)
        section = {**info, "file": NOVELTY_HEAD_FILE, "weights_sha256": weights_digest(folder)}
        section["thresholds"] = self.thresholds
        meta_file = folder / METADATA_FILE
        document = json.loads(meta_file.read_text())
        document[SECTION] = section
        meta_file.write_text(json.dumps(document, indent=1, default=json_default) + "\n")
        self.info = {k: v for k, v in section.items() if k not in ("file", "weights_sha256")}
        return section


def load_head(folder: str | Path, document: dict) -> KnnNoveltyHead | None:
    """The head of a bundle folder (None when its metadata has no "novelty_head" section).

    Raises BundleFormatError when the file is missing, the method unknown, or the classifier weights
    changed since the bank was embedded (the message gives the command that refits it).
    """
    section = document.get(SECTION)
    if not section:
        return None
    folder = Path(folder)
    if section.get("method") != METHOD:
        raise BundleFormatError(f"bundle {folder}: unknown novelty head method {section.get('method')!r}")
    recorded, current = section.get("weights_sha256"), weights_digest(folder)
    if recorded and current and recorded != current:
        raise BundleFormatError(
            f"bundle {folder}: the novelty head was fitted on other classifier weights; refit it with "
            + REFIT_HINT.format(path=folder)
        )
    file = folder / section.get("file", NOVELTY_HEAD_FILE)
    if not file.is_file():
        raise BundleFormatError(f"bundle {folder}: missing {file.name} (listed in metadata.json)")
    with np.load(file) as arrays:
        by_length = {
            int(key.removeprefix("quantiles_L")): arrays[key]
            for key in arrays.files
            if key.startswith("quantiles_L")
        }
        info = {k: v for k, v in section.items() if k not in ("file", "weights_sha256")}
        plane = PlaneComponent.load(arrays, info[PLANE_SECTION]) if PLANE_SECTION in info else None
        return KnnNoveltyHead(arrays["bank"], section["k"], arrays["quantiles"], by_length, info, plane)
