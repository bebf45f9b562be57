"""Model bundles: a trained network plus everything needed to feed it the same windows it was trained on.

On disk a bundle is a folder::

    weights.pt      the network's state_dict (tensors only: `torch.load(weights_only=True)` reads it)
    metadata.json   kind, name, version, class names, window and period-search settings, architecture and
                    hyper-parameters, training data and split, test metrics, changes from the paper, and for
                    novelty bundles the energy thresholds and ~1,000 quantiles of the training energies.
    novelty_head.npz  optional, classifier bundles: the k-NN novelty head of the classifier's embedding
                    (`models.novelty_head`; fitted by `models.novelty_fit`), listed in metadata.json.

A classifier's metadata may hold per-length temperatures ("temperature", `models.calibration`): its
probabilities are softmax(logits / T_length); without them T = 1.

Two kinds: "classifier" (iTCN / TCN / iResNet; `Prediction.energy` is None, `Prediction.novelty_score`
the head's score when it has one) and "novelty" (AE-GMM; its γ is also a class probability). `predict`
takes numpy `Windows` and returns numpy arrays; windows of different true lengths are grouped so no
network ever sees zero padding.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from models import aegmm, ensemble, itcn
from models.bundle_format import (  # re-exported: the format's names are also this module's
    AEGMM_BUNDLE,
    BUNDLES_DIR,
    DEFAULT_CLASSIFIER_BUNDLE,
    DEFAULT_NOVELTY_BUNDLE,
    FORMAT_VERSION,
    KINDS,
    METADATA_FILE,
    N_ENERGY_QUANTILES,
    WEIGHTS_FILE,
    BundleFormatError,
    EnergyRanks,
    Prediction,
    check_lengths,
    length_groups,
    pad_rows,
    read_document,
)
from models.calibration import TemperatureTable, table_from_metadata
from models.jsonio import json_default
from models.novelty_head import KnnNoveltyHead, load_head
from models.windows import Windows

__all__ = [
    "AEGMM_BUNDLE",
    "BUNDLES_DIR",
    "DEFAULT_CLASSIFIER_BUNDLE",
    "DEFAULT_NOVELTY_BUNDLE",
    "FORMAT_VERSION",
    "KINDS",
    "METADATA_FILE",
    "N_ENERGY_QUANTILES",
    "WEIGHTS_FILE",
    "Bundle",
    "BundleFormatError",
    "Prediction",
    "length_groups",
    "load_bundle",
    "run_model",
    "save_bundle",
]


def resolve_device(device: str) -> torch.device:
    """ "auto" → cuda when available, else cpu; anything else is passed to torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@torch.inference_mode()
def run_model(
    model: torch.nn.Module,
    kind: str,
    windows: Windows,
    device: torch.device | str,
    batch_size: int,
    pad_batches: bool = False,
    head: KnnNoveltyHead | None = None,
    temperature: TemperatureTable | None = None,
) -> Prediction:
    """Run a classifier or AE-GMM (already on `device`) over windows, one true length per batch.

    pad_batches: pad each batch to one of a few fixed sizes (`bundle_format.PADDED_BATCH_SIZES`) by
    repeating a window, so an accelerator sees a handful of shapes; the padding's outputs are dropped.
    head: a classifier's novelty head, scoring each window's embedding (`Prediction.novelty_score`).
    temperature: a classifier's per-length temperatures (`models.calibration`); None serves T = 1.
    """
    model.eval()
    n = len(windows)
    lengths = np.asarray(windows.lengths)
    check_lengths(lengths, windows.window_length)
    n_classes = model.n_classes if kind == "classifier" else model.estimator[-1].out_features
    proba = np.zeros((n, n_classes), np.float64)
    energy = np.zeros(n, np.float64) if kind == "novelty" else None
    score = np.zeros(n, np.float64) if head is not None else None
    for length, index in length_groups(lengths, batch_size):
        rows = pad_rows(index) if pad_batches else index
        keep = len(index)
        x = windows.x[rows, :length]
        aux = torch.as_tensor(windows.aux[rows], dtype=torch.float32, device=device)
        if kind == "classifier":
            xt, _ = itcn.window_tensors(x, windows.aux[rows], device)
            embedding, logits = model.embed(xt, aux)
            scale = 1.0 if temperature is None else temperature.scale(length)
            proba[index] = torch.softmax(logits.double() / scale, dim=-1)[:keep].cpu().numpy()
            if head is not None:
                score[index] = head.score(embedding[:keep].double().cpu().numpy(), windows.aux[index])
        else:
            out = model(torch.as_tensor(x, dtype=torch.float32, device=device), aux)
            proba[index] = torch.softmax(out.logits.double(), dim=-1)[:keep].cpu().numpy()
            energy[index] = model.energy(out.z).double()[:keep].cpu().numpy()
    return Prediction(proba=proba, energy=energy, novelty_score=score)


class Bundle:
    """A loaded (or freshly trained) model with its metadata; see the module docstring."""

    def __init__(
        self,
        kind: str,
        name: str,
        version: str,
        class_names: list[str],
        window: dict,
        period_search: dict,
        metadata: dict,
        model: torch.nn.Module,
        novelty_thresholds: dict[str, float] | None = None,
        energy_quantiles: np.ndarray | None = None,
        energy_quantiles_by_length: dict[int, np.ndarray] | None = None,
        novelty_head: KnnNoveltyHead | None = None,
    ) -> None:
        if kind not in KINDS:
            raise BundleFormatError(f"bundle kind must be one of {KINDS}, got {kind!r}")
        if kind == "novelty" and (novelty_thresholds is None or energy_quantiles is None):
            raise BundleFormatError(f"novelty bundle {name!r} needs novelty_thresholds and energy_quantiles")
        self.kind = kind
        self.name = name
        self.version = version
        self.class_names = list(class_names)
        self.window = dict(window)
        self.period_search = dict(period_search)
        self.metadata = dict(metadata)
        self.model = model.eval()
        self.novelty_thresholds = dict(novelty_thresholds) if novelty_thresholds else {}
        self.energy_quantiles = None if energy_quantiles is None else np.asarray(energy_quantiles, float)
        self.energy_quantiles_by_length = {
            int(length): np.asarray(table, float)
            for length, table in (energy_quantiles_by_length or {}).items()
        }
        if novelty_head is not None and kind != "classifier":
            raise BundleFormatError(f"bundle {name!r}: only a classifier bundle carries a novelty head")
        self.novelty_head = novelty_head
        self._device = torch.device("cpu")
        self.model.to(self._device)

    def __repr__(self) -> str:
        return (
            f"Bundle({self.kind!r}, {self.name!r}, version={self.version!r}, classes={len(self.class_names)})"
        )

    def seen_ids(self) -> set[str] | None:
        """Archive ids this bundle was trained or tuned on (train + val + calibration), None when unrecorded.

        Metadata "data.split.train_ids" / "val_ids" / "calibration_ids" (written by `varstream train`).
        Objects outside this set, from the bundle's own archive or any other, are unseen data for it.
        """
        return seen_ids(self.metadata)

    def predict(
        self, windows: Windows, device: str = "cpu", batch_size: int = 512, pad_batches: bool = False
    ) -> Prediction:
        """Class probabilities (energies for novelty bundles, head scores for a classifier with a novelty
        head) of every window, in input order.

        Windows are grouped by true length (`windows.lengths`) and each group is cut to that length.
        The model moves to `device` once and stays there (resident) for later calls.
        """
        target = resolve_device(device)
        if target != self._device:
            self.model.to(target)
            self._device = target
        return run_model(
            self.model,
            self.kind,
            windows,
            target,
            batch_size,
            pad_batches,
            self.novelty_head,
            self.temperature,
        )

    @property
    def temperature(self) -> TemperatureTable | None:
        """Per-length temperatures of the classifier's probabilities (metadata "temperature"), or None."""
        return table_from_metadata(self.metadata)

    def novelty_percentile(self, score: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """Percentile (0–100) of novelty-head scores among its calibration windows of each length."""
        if self.novelty_head is None:
            raise BundleFormatError(f"bundle {self.name!r} has no novelty head")
        return self.novelty_head.percentile(score, lengths)

    def energy_percentile(self, energy: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """Percentile (0–100) of each energy among the training energies (interpolated between quantiles).

        With `lengths` (the window length behind each energy) and per-length tables, each energy is ranked
        among training windows cut to the same length: a young object's short window has a higher energy
        than a full one, and ranked against full windows nearly every young object would look novel.
        """
        if self.energy_quantiles is None:
            raise BundleFormatError(f"bundle {self.name!r} ({self.kind}) has no training energies")
        ranks = EnergyRanks(self.energy_quantiles, self.energy_quantiles_by_length)
        return ranks.percentile(energy, lengths)


def seen_ids(metadata: dict) -> set[str] | None:
    """train_ids ∪ val_ids of bundle metadata (see `Bundle.seen_ids`); None when either is missing."""
    split = metadata.get("data", {}).get("split", {})
    train, val = split.get("train_ids"), split.get("val_ids")
    if not isinstance(train, list) or not isinstance(val, list):
        return None
    return {str(i) for i in [*train, *val, *split.get("calibration_ids", [])]}


def build_model(kind: str, arch: str, n_classes: int, hyperparameters: dict) -> torch.nn.Module:
    """The untrained network a bundle of this kind/arch holds."""
    if kind == "classifier" and arch == ensemble.ARCH:
        return ensemble.build_ensemble(n_classes, **hyperparameters)
    if kind == "classifier":
        return itcn.build_classifier(arch, n_classes, **hyperparameters)
    if kind == "novelty":
        if arch != "aegmm":
            raise BundleFormatError(f"novelty bundles hold an 'aegmm', got arch {arch!r}")
        return aegmm.AEGMM(n_classes, **hyperparameters)
    raise BundleFormatError(f"bundle kind must be one of {KINDS}, got {kind!r}")


def save_bundle(bundle: Bundle, path: str | Path) -> Path:
    """Write `bundle` as a folder (created; files inside overwritten) and return its path."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().cpu().contiguous() for key, value in bundle.model.state_dict().items()}
    torch.save(state, path / WEIGHTS_FILE)
    document = {
        "format_version": FORMAT_VERSION,
        "kind": bundle.kind,
        "name": bundle.name,
        "version": bundle.version,
        "class_names": bundle.class_names,
        "window": bundle.window,
        "period_search": bundle.period_search,
        "metadata": bundle.metadata,
    }
    if bundle.kind == "novelty":
        document["novelty"] = {
            "thresholds": bundle.novelty_thresholds,
            "energy_quantiles": [float(q) for q in bundle.energy_quantiles],
            "energy_quantiles_by_length": {
                str(length): [float(q) for q in table]
                for length, table in bundle.energy_quantiles_by_length.items()
            },
        }
    (path / METADATA_FILE).write_text(json.dumps(document, indent=1, default=json_default) + "\n")
    if bundle.novelty_head is not None:  # after the weights: the head records their digest
        bundle.novelty_head.save(path)
    return path


def load_bundle(path: str | Path, with_novelty_head: bool = True) -> Bundle:
    """Read a bundle folder written by `save_bundle`; raises BundleFormatError naming what is wrong.

    with_novelty_head=False skips a classifier's novelty head (to refit one that is stale).
    """
    path = Path(path)
    weights_file = path / WEIGHTS_FILE
    document = read_document(path)
    if not weights_file.is_file():
        raise BundleFormatError(f"bundle {path}: missing {weights_file.name}")
    try:
        kind, metadata, class_names = document["kind"], document["metadata"], document["class_names"]
        model = build_model(kind, metadata["arch"], len(class_names), metadata["hyperparameters"])
    except KeyError as err:
        raise BundleFormatError(f"bundle {path}: {METADATA_FILE} lacks {err}") from err
    try:
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, OSError, ValueError) as err:
        raise BundleFormatError(f"bundle {path}: weights do not fit the metadata: {err}") from err
    novelty = document.get("novelty") or {}
    return Bundle(
        kind=kind,
        name=document.get("name", path.name),
        version=document.get("version", "0"),
        class_names=class_names,
        window=document.get("window", {}),
        period_search=document.get("period_search", {}),
        metadata=metadata,
        model=model,
        novelty_thresholds=novelty.get("thresholds"),
        energy_quantiles=None if not novelty else np.asarray(novelty["energy_quantiles"], np.float64),
        energy_quantiles_by_length=(novelty or {}).get("energy_quantiles_by_length"),
        novelty_head=load_head(path, document) if with_novelty_head else None,
    )


def training_energy_summary(energies: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """Thresholds {"p80", "p95"} and the N_ENERGY_QUANTILES quantiles of the training energies."""
    energies = np.asarray(energies, np.float64)
    if not len(energies) or not np.isfinite(energies).all():
        raise ValueError(f"training energies must be finite and non-empty, got {len(energies)} values")
    quantiles = np.percentile(energies, np.linspace(0.0, 100.0, N_ENERGY_QUANTILES))
    thresholds = {"p80": float(np.percentile(energies, 80)), "p95": float(np.percentile(energies, 95))}
    return thresholds, quantiles


# Classes `models.data.select_classes` keeps on the CRTS training set (RS_CVn is the held-out unseen class).
CRTS_CLASSES = ["Cep_II", "EA", "ELL", "EW", "HADS", "LPV", "RRab", "RRc", "RRd", "beta_lyrae"]
DEFAULT_WINDOW = {"length": 200, "min_length": 50, "buckets": [50, 100, 150, 200], "min_remainder": 50}


def make_untrained_bundles(
    out_dir: str | Path,
    class_names: list[str] | None = None,
    window: dict | None = None,
    period_search: dict | None = None,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Write a randomly initialised classifier/novelty pair (placeholders with the real format and API).

    The AE-GMM's mixture and energy quantiles are fitted on random windows so every field is usable.
    Returns (classifier path, novelty path).
    """
    out_dir = Path(out_dir)
    class_names = list(class_names or CRTS_CLASSES)
    window = dict(window or DEFAULT_WINDOW)
    period_search = dict(period_search or {})
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    length = int(window["length"])
    x = rng.normal(size=(64, length, 3)).astype(np.float32)
    x[:, :, 0] = 1.0 / length
    x[:, :, 2] = np.abs(x[:, :, 2]) * 0.1
    aux = np.column_stack([rng.normal(16, 1, 64), rng.uniform(0.1, 1, 64), rng.uniform(-1, 2, 64)])
    aux_t = torch.as_tensor(aux, dtype=torch.float32)
    common = {
        "untrained": True,
        "note": "randomly initialised placeholder for integration; predictions are meaningless",
    }
    classifier_hp = dict(itcn.DEFAULT_HYPERPARAMETERS)
    classifier = itcn.build_classifier("itcn", len(class_names), **classifier_hp)
    classifier.set_aux_scaling(aux_t.mean(0), aux_t.std(0))
    shared = {
        "version": "0.0.0",
        "class_names": class_names,
        "window": window,
        "period_search": period_search,
    }
    clf_bundle = Bundle(
        kind="classifier",
        name="crts-itcn-untrained",
        metadata={**common, "arch": "itcn", "hyperparameters": classifier_hp},
        model=classifier,
        **shared,
    )
    novelty_hp = dict(aegmm.DEFAULT_HYPERPARAMETERS)
    novelty = aegmm.AEGMM(len(class_names), **novelty_hp)
    novelty.set_aux_scaling(aux_t.mean(0), aux_t.std(0))
    x_t = torch.as_tensor(x)
    aegmm.fit_gmm(novelty, [(x_t, aux_t)])
    with torch.no_grad():
        energies = novelty.energy(novelty(x_t, aux_t).z).numpy()
    thresholds, quantiles = training_energy_summary(energies)
    nov_bundle = Bundle(
        kind="novelty",
        name="crts-aegmm-untrained",
        metadata={**common, "arch": "aegmm", "hyperparameters": novelty_hp},
        model=novelty,
        novelty_thresholds=thresholds,
        energy_quantiles=quantiles,
        **shared,
    )
    return save_bundle(clf_bundle, out_dir / "crts-itcn"), save_bundle(nov_bundle, out_dir / "crts-aegmm")
