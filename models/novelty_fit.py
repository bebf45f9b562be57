"""Fit a classifier bundle's k-NN novelty head (`models.novelty_head`) after training: seconds, no gradient.

The bank is the unit embeddings of the training windows (each at its own length). The percentile tables
come from other windows, the calibration split's (carved out of train, so early stopping never saw it;
the validation split for bundles trained before it existed), each cut to every bucket length as
training cuts windows (`models.train.batch_arrays`): scores of the bank's own windows would count
themselves among their neighbours and sit low, so thresholds drawn from them would flag too many known
objects.

k is chosen on that same split, never on test objects (`select_k`): it has no unseen class, so each
training class in turn plays it (leave-one-class-out: the bank without that class, its objects of that
split as the unseen set against the other classes' objects), and the k with the best mean ROC AUC wins.
The grid, each k's proxy AUC and p95 recall, and the known objects of that split flagged at p95, are
recorded in the head's metadata ("k_selection").

The weight of the period–amplitude component (`models.period_amplitude`) is chosen the same way
(`select_plane_weight`); a weight of 0 leaves the head the embedding distance alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from models.bundle import Bundle, resolve_device
from models.bundle_format import N_ENERGY_QUANTILES, EnergyRanks, length_groups
from models.evaluate import longest_windows
from models.itcn import window_tensors
from models.novelty_head import DEFAULT_K, METHOD, SCORE_CHUNK, KnnNoveltyHead, PlaneComponent, unit_rows
from models.period_amplitude import PeriodAmplitudeDensity, tail
from models.post_hoc_cuts import cut_batches, cut_lengths
from models.windows import Windows

MAX_CALIBRATION_WINDOWS = 4000  # per length
K_GRID = (5, 10, 20, 50, 100)
WEIGHT_GRID = (0.0, 0.1, 0.2, 0.3, 0.5)  # of the period–amplitude component
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
) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, aux) of up to `max_windows` windows holding >= `length` points, each cut to `length`."""
    _, batches = cut_batches(windows, length, rng, max_windows)
    embeddings, auxes = [], []
    for x, aux in batches:
        embeddings.append(embed_arrays(model, x, aux, device))
        auxes.append(aux)
    if not embeddings:
        return np.zeros((0, 0)), np.zeros((0, windows.aux.shape[1]))
    return np.concatenate(embeddings), np.concatenate(auxes)


def fit_knn_head(
    bundle: Bundle,
    train: Windows,
    calibration: Windows,
    k: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    calibration_name: str = "val",
    k_grid: Sequence[int] = K_GRID,
    weight_grid: Sequence[float] = WEIGHT_GRID,
) -> KnnNoveltyHead:
    """The k-NN head of a classifier bundle: bank from `train`, per-length percentiles from `calibration`.

    train/calibration: labelled windows of the bundle's training and calibration splits (by object);
    calibration_name names the latter in the metadata ("calibration", or "val" for older bundles).
    k: the neighbour rank; None chooses it from `k_grid` on the calibration split (`select_k`).
    weight_grid: weights of the period–amplitude component to choose from (`select_plane_weight`); (0,)
    fits the embedding distance alone.
    """
    if bundle.kind != "classifier":
        raise ValueError(f"a novelty head belongs to a classifier bundle, got a {bundle.kind!r} bundle")
    if not len(train) or not len(calibration):
        raise ValueError("a novelty head needs training and calibration windows")
    started = time.perf_counter()
    target = str(resolve_device(device))
    home = next(bundle.model.parameters()).device
    model = bundle.model.to(target).eval()
    rng = np.random.default_rng(seed)
    bank = unit_rows(embed_windows(model, train, target))
    calibration_units = unit_rows(embed_windows(model, calibration, target))
    cuts, cut_aux = {}, {}
    for length in cut_lengths(bundle.window):
        cut, aux = cut_embeddings(model, calibration, length, rng, MAX_CALIBRATION_WINDOWS, target)
        if len(cut):
            cuts[length], cut_aux[length] = cut, aux
    model.to(home)
    if k is None:
        k, selection = select_k(
            bank, train.labels, calibration_units, calibration, cuts, k_grid, calibration_name
        )
    else:
        selection = {"method": "given (--k)", "chosen": int(k)}
    if len(bank) < k:  # a toy training set (tests, smoke runs): the farthest training window instead
        log.warning(
            "novelty head: k = %d but only %d training windows; using k = %d", k, len(bank), len(bank)
        )
        k = selection["chosen"] = len(bank)
    grid = np.linspace(0.0, 100.0, N_ENERGY_QUANTILES)
    distances = kth_distances(calibration_units, bank, [k])[:, 0]
    weight, plane_selection = select_plane_weight(
        bank, train, calibration_units, calibration, k, weight_grid, calibration_name
    )
    plane = None
    if weight > 0:
        density = PeriodAmplitudeDensity.fit(train.aux, train.object_ids)
        plane_quantiles = np.percentile(density.score(calibration.aux), grid)
        plane = PlaneComponent(
            density, weight, np.percentile(distances, grid), plane_quantiles, plane_selection
        )

    def scored(distance: np.ndarray, aux: np.ndarray) -> np.ndarray:
        return distance if plane is None else plane.join(distance, aux)

    scores = scored(distances, calibration.aux)
    by_length = {
        length: np.percentile(scored(kth_distances(unit_rows(cut), bank, [k])[:, 0], cut_aux[length]), grid)
        for length, cut in cuts.items()
    }
    info = {
        "name": f"{bundle.name}-{METHOD}{k}" + ("-pa" if plane is not None else ""),
        "version": bundle.version,
        "embedding": "iTCN penultimate features mean-pooled over phases, scaled to unit length",
        "bank_windows": len(train),
        "k_selection": selection,
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
    if plane is None:
        info["period_amplitude_selection"] = plane_selection
    return KnnNoveltyHead(bank, k, np.percentile(scores, grid), by_length, info, plane)


def select_plane_weight(
    bank: np.ndarray,
    train: Windows,
    calibration_units: np.ndarray,
    calibration: Windows,
    k: int,
    weight_grid: Sequence[float] = WEIGHT_GRID,
    split_name: str = "val",
) -> tuple[float, dict]:
    """The period–amplitude weight of the grid with the best mean leave-one-class-out ROC AUC.

    As `select_k`: each training class in turn leaves both banks (its windows' embeddings, its objects'
    points in the plane), and its calibration objects are the unseen set. The tail tables come from the
    known classes' calibration windows. Ties go to the smaller weight; 0 means no plane component.
    """
    bank_labels = np.asarray(train.labels).astype(str)
    labels = np.asarray(calibration.labels).astype(str)
    classes = [c for c in np.unique(bank_labels) if (labels == c).any()]
    weights = sorted({float(w) for w in weight_grid} | {0.0})
    if len(classes) < 2 or len(weights) == 1:
        return 0.0, {"method": "none (too few classes to choose, or no weight to try)", "chosen": 0.0}
    object_ids = np.asarray(calibration.object_ids)
    grid = np.linspace(0.0, 100.0, N_ENERGY_QUANTILES)
    auc = np.zeros((len(classes), len(weights)))
    for row, name in enumerate(classes):
        keep = bank_labels != name
        distance = kth_distances(calibration_units, bank[keep], [min(k, int(keep.sum()))])[:, 0]
        density = PeriodAmplitudeDensity.fit(train.aux[keep], np.asarray(train.object_ids)[keep])
        plane = density.score(calibration.aux)
        unseen = labels == name
        distance_tail = tail(distance, np.percentile(distance[~unseen], grid))
        plane_tail = tail(plane, np.percentile(plane[~unseen], grid))
        for col, weight in enumerate(weights):
            joined = (1.0 - weight) * distance_tail + weight * plane_tail
            auc[row, col], _ = _held_out_class_scores(object_ids, unseen, joined)
    mean_auc = auc.mean(axis=0)
    best = int(np.argmax(mean_auc))  # ties: the smallest weight
    record = {
        "method": f"leave-one-class-out on the {split_name} split: mean ROC AUC of the joined score",
        "split": split_name,
        "grid": {str(w): round(float(mean_auc[i]), 4) for i, w in enumerate(weights)},
        "chosen": weights[best],
    }
    log.info(
        "novelty head: period–amplitude weight %s (leave-one-class-out AUC %s)", weights[best], record["grid"]
    )
    return weights[best], record


def kth_distances(units: np.ndarray, bank: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """(n, D) unit rows, (m, D) unit bank → (n, len(ks)) distance of each row to its k-th nearest, per k."""
    bank32 = np.asarray(bank, np.float32)
    top = max(ks)
    out = np.empty((len(units), len(ks)))
    for start in range(0, len(units), SCORE_CHUNK):
        chunk = np.asarray(units[start : start + SCORE_CHUNK], np.float32)
        squared = np.maximum(2.0 - 2.0 * chunk @ bank32.T, 0.0)
        nearest = np.sort(np.partition(squared, top - 1, axis=1)[:, :top], axis=1)
        out[start : start + len(chunk)] = np.sqrt(nearest[:, [k - 1 for k in ks]])
    return out


def select_k(
    bank: np.ndarray,
    bank_labels: np.ndarray,
    calibration_units: np.ndarray,
    calibration: Windows,
    cuts: dict[int, np.ndarray],
    k_grid: Sequence[int] = K_GRID,
    split_name: str = "val",
) -> tuple[int, dict]:
    """k of the grid with the best mean leave-one-class-out ROC AUC on the calibration split.

    For each training class c: the bank without c's windows scores every calibration window; objects
    (mean of their windows) of class c are the unseen set, the other classes' objects the known set.
    Also recorded per k: the mean recall of those unseen sets at the known set's 95th percentile, and
    the known calibration objects flagged at p95 by the full head (in-sample: the tables come from the
    same split). Returns (k, the "k_selection" record). Falls back to DEFAULT_K (capped at the bank) when
    fewer than two classes have calibration objects or no k of the grid fits the smallest reduced bank.
    """
    bank_labels = np.asarray(bank_labels).astype(str)
    labels = np.asarray(calibration.labels).astype(str)
    classes = [c for c in np.unique(bank_labels) if (labels == c).any()]
    reduced = min((int((bank_labels != c).sum()) for c in classes), default=0)
    ks = [int(k) for k in k_grid if 1 <= k <= reduced]
    fallback = {
        "method": "default (too few classes or windows to choose)",
        "chosen": min(DEFAULT_K, len(bank)),
    }
    if len(classes) < 2 or not ks:
        return fallback["chosen"], fallback
    object_ids = np.asarray(calibration.object_ids)
    auc, recall = np.zeros((len(classes), len(ks))), np.zeros((len(classes), len(ks)))
    for row, name in enumerate(classes):
        distances = kth_distances(calibration_units, bank[bank_labels != name], ks)
        unseen = labels == name
        for col in range(len(ks)):
            auc[row, col], recall[row, col] = _held_out_class_scores(object_ids, unseen, distances[:, col])
    flagged = _known_flagged(bank, calibration_units, calibration, cuts, ks)
    mean_auc = auc.mean(axis=0)
    best = int(np.argmax(mean_auc))  # ties: the smallest k
    grid = {
        str(k): {
            "loco_roc_auc": round(float(mean_auc[i]), 4),
            "loco_p95_recall": round(float(recall[:, i].mean()), 4),
            "val_known_flagged_p95": round(float(flagged[i]), 4),
        }
        for i, k in enumerate(ks)
    }
    record = {
        "method": f"leave-one-class-out on the {split_name} split: mean ROC AUC "
        "(objects = mean window score)",
        "split": split_name,
        "classes": classes,
        "grid": grid,
        "chosen": ks[best],
    }
    return ks[best], record


def _held_out_class_scores(
    object_ids: np.ndarray, unseen: np.ndarray, scores: np.ndarray
) -> tuple[float, float]:
    """Leave-one-class-out, one class left out: (ROC AUC of its objects against the others, the share of
    its objects above the others' 95th percentile); an object's score is its windows' mean."""
    known = _object_means(object_ids[~unseen], scores[~unseen])
    held_out = _object_means(object_ids[unseen], scores[unseen])
    truth = np.r_[np.zeros(len(known)), np.ones(len(held_out))]
    auc = float(roc_auc_score(truth, np.r_[known, held_out]))
    return auc, float(np.mean(held_out > np.percentile(known, 95)))


def _object_means(object_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    _, group = np.unique(object_ids, return_inverse=True)
    return np.bincount(group, values) / np.bincount(group)


def _known_flagged(bank, calibration_units, calibration: Windows, cuts: dict, ks) -> np.ndarray:
    """Per k: share of calibration objects whose mean score is above p95 of their longest length's table."""
    grid = np.linspace(0.0, 100.0, N_ENERGY_QUANTILES)
    window_scores = kth_distances(calibration_units, bank, ks)
    cut_scores = {length: kth_distances(unit_rows(cut), bank, ks) for length, cut in cuts.items()}
    ids, group = np.unique(np.asarray(calibration.object_ids), return_inverse=True)
    longest = longest_windows(calibration, ids)
    out = np.zeros(len(ks))
    for col in range(len(ks)):
        whole = window_scores[:, col]
        tables = {length: np.percentile(s[:, col], grid) for length, s in cut_scores.items()}
        ranks = EnergyRanks(np.percentile(whole, grid), tables)
        means = np.bincount(group, whole) / np.bincount(group)
        out[col] = np.mean(ranks.percentile(means, longest) > 95.0)
    return out
