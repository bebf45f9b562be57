"""Metrics of the classifier, the novelty detector and the period search, and the report they go into.

Shared by `varstream evaluate`, `varstream compare-models` and the stream evaluator, so the offline and the
streaming numbers mean the same thing. Objects are the unit: an object's prediction is the mean of its
windows' probabilities (and energies), as the runtime does.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import (
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from models.calibration import ECE_BINS, expected_calibration_error, nll, uncalibrated
from models.jsonio import json_default
from models.windows import Windows


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str], class_names: Sequence[str]) -> dict:
    """Accuracy, balanced accuracy (mean recall over the classes present), per-class P/R/F1, confusion matrix.

    Every true label must be one of `class_names` (objects of other classes belong to the novelty set).
    confusion_matrix.matrix[i][j] counts objects of class labels[i] predicted as labels[j].
    """
    y_true, y_pred, labels = np.asarray(y_true, object), np.asarray(y_pred, object), list(class_names)
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} entries but y_pred has {len(y_pred)}")
    unknown = sorted(set(map(str, y_true)) - set(labels))
    if unknown:
        raise ValueError(f"true labels {unknown} are not among the class names {labels}")
    if not len(y_true):
        return {"n": 0, "accuracy": float("nan"), "balanced_accuracy": float("nan"), "per_class": {}}
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(labels)
    }
    return {
        "n": len(y_true),
        "accuracy": float(np.mean(y_true == y_pred)),
        "balanced_accuracy": _balanced_accuracy(y_true, y_pred),
        "per_class": per_class,
        "confusion_matrix": {
            "labels": labels,
            "matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        },
    }


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in y_true (sklearn's warning about other predicted classes,
    expected when a small set lacks some classes, is silenced)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return float(balanced_accuracy_score(y_true, y_pred))


def novelty_metrics(is_unseen: np.ndarray, energy: np.ndarray, thresholds: dict[str, float]) -> dict:
    """Precision / recall / F1 of "energy > threshold" for each threshold; positive = unseen class.

    Returns {name: {precision, recall, f1, threshold, n_flagged}} for every entry of `thresholds`.
    """
    is_unseen = np.asarray(is_unseen, bool)
    energy = np.asarray(energy, np.float64)
    if is_unseen.shape != energy.shape:
        raise ValueError(f"is_unseen {is_unseen.shape} and energy {energy.shape} differ in shape")
    out = {}
    for name, threshold in thresholds.items():
        flagged = energy > threshold
        true_positive = int(np.sum(flagged & is_unseen))
        precision = true_positive / flagged.sum() if flagged.any() else 0.0
        recall = true_positive / is_unseen.sum() if is_unseen.any() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "threshold": float(threshold),
            "n_flagged": int(flagged.sum()),
        }
    return out


def period_recovery(found: np.ndarray, catalogue: np.ndarray, tolerance: float = 0.01) -> dict:
    """Share of objects whose found period is within `tolerance` (relative) of the catalogue period.

    Also counts the ×2 and ×½ aliases (an eclipsing binary's LS peak sits at half its orbital period) and
    gives "within_tolerance_or_alias", the share matching any of the three.
    """
    found, catalogue = np.asarray(found, np.float64), np.asarray(catalogue, np.float64)
    if found.shape != catalogue.shape:
        raise ValueError(f"found {found.shape} and catalogue {catalogue.shape} periods differ in shape")
    ok = np.isfinite(found) & np.isfinite(catalogue) & (found > 0) & (catalogue > 0)
    ratio = found[ok] / catalogue[ok]
    exact = np.abs(ratio - 1) <= tolerance
    double = np.abs(ratio / 2 - 1) <= tolerance
    half = np.abs(ratio * 2 - 1) <= tolerance
    n = int(ok.sum())

    def share(mask: np.ndarray) -> float:
        return float(mask.mean()) if n else float("nan")

    return {
        "n": n,
        "tolerance": tolerance,
        "within_tolerance": share(exact),
        "double": share(double),
        "half": share(half),
        "within_tolerance_or_alias": share(exact | double | half),
    }


@dataclass
class ObjectScores:
    """Per-object aggregates, objects in order of first appearance.

    object_ids (m,); proba (m, K) mean of window probabilities; n_windows (m,); labels (m,) or None;
    energy (m,) mean window energy or None.
    """

    object_ids: np.ndarray
    proba: np.ndarray
    n_windows: np.ndarray
    labels: np.ndarray | None = None
    energy: np.ndarray | None = None

    def predicted(self, class_names: Sequence[str]) -> np.ndarray:
        return np.asarray(class_names, object)[np.argmax(self.proba, axis=1)]


def aggregate_by_object(
    object_ids: np.ndarray,
    proba: np.ndarray,
    labels: np.ndarray | None = None,
    energy: np.ndarray | None = None,
) -> ObjectScores:
    """Mean of the windows' probabilities (and energies) per object; the label is its windows' label."""
    object_ids = np.asarray(object_ids, object)
    unique, first, inverse = np.unique(object_ids, return_index=True, return_inverse=True)
    order = np.argsort(first)  # keep first-appearance order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    group = rank[inverse]
    counts = np.bincount(group, minlength=len(unique))

    def mean(values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, np.float64)
        sums = np.zeros((len(unique), *values.shape[1:]))
        np.add.at(sums, group, values)
        return sums / counts.reshape(-1, *([1] * (values.ndim - 1)))

    firsts = first[order]
    return ObjectScores(
        object_ids=unique[order],
        proba=mean(proba),
        n_windows=counts,
        labels=None if labels is None else np.asarray(labels, object)[firsts],
        energy=None if energy is None else mean(energy),
    )


def write_report(
    out_dir: str | Path,
    metrics: dict,
    energy_seen: np.ndarray | None = None,
    energy_unseen: np.ndarray | None = None,
    thresholds: dict[str, float] | None = None,
    examples: Windows | None = None,
) -> list[Path]:
    """Write metrics.json and the PNGs that fit what is given; returns the written paths.

    confusion_matrix.png from metrics["confusion_matrix"] (row-normalised); energy_histogram.png from the
    seen/unseen object energies with the thresholds; example_windows.png from labelled `examples`
    (a few folded windows per class).
    """
    import matplotlib

    matplotlib.use("Agg")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "metrics.json"]
    written[0].write_text(json.dumps(metrics, indent=1, default=json_default) + "\n")
    if "confusion_matrix" in metrics:
        written.append(_plot_confusion(out_dir / "confusion_matrix.png", metrics["confusion_matrix"]))
    if energy_seen is not None and energy_unseen is not None:
        written.append(
            _plot_energies(out_dir / "energy_histogram.png", energy_seen, energy_unseen, thresholds or {})
        )
    if examples is not None and examples.labels is not None and len(examples):
        written.append(_plot_examples(out_dir / "example_windows.png", examples))
    return written


def _plot_confusion(path: Path, cm: dict) -> Path:
    import matplotlib.pyplot as plt

    labels, matrix = cm["labels"], np.asarray(cm["matrix"], np.float64)
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = 1.0 + 0.55 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                colour = "white" if normalised[i, j] > 0.5 else "black"
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_energies(path: Path, seen: np.ndarray, unseen: np.ndarray, thresholds: dict[str, float]) -> Path:
    import matplotlib.pyplot as plt

    seen, unseen = np.asarray(seen, np.float64), np.asarray(unseen, np.float64)
    both = np.concatenate([seen, unseen])
    low, high = np.percentile(both, [0.5, 99.5]) if len(both) else (0.0, 1.0)
    bins = np.linspace(low, high, 50) if high > low else 10
    fig, ax = plt.subplots(figsize=(7, 4))
    for scores, name in ((seen, "seen classes"), (unseen, "unseen")):
        if len(scores):  # a density of no objects is 0/0; the outer 1% go into the end bins
            clipped = np.clip(scores, low, high) if high > low else scores
            ax.hist(clipped, bins=bins, alpha=0.6, density=True, label=f"{name} ({len(scores)})")
    for name, value in thresholds.items():
        ax.axvline(value, ls="--", color="k" if name == "p95" else "grey", label=f"{name} = {value:.1f}")
    ax.set_xlabel("novelty score, object mean (AE-GMM energy or k-NN head score)")
    ax.set_ylabel("density")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_examples(path: Path, windows: Windows, per_class: int = 3) -> Path:
    import matplotlib.pyplot as plt

    classes = sorted(set(map(str, windows.labels)))
    fig, axes = plt.subplots(
        len(classes), per_class, figsize=(3 * per_class, 1.6 * len(classes)), squeeze=False
    )
    for row, name in enumerate(classes):
        index = np.flatnonzero(windows.labels == name)[:per_class]
        for col in range(per_class):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(index):
                ax.axis("off")
                continue
            i = index[col]
            k = int(windows.lengths[i])
            phase = np.cumsum(windows.x[i, :k, 0])
            phase = phase - phase[0]
            ax.plot(phase, windows.x[i, :k, 1], ".", ms=2)
            ax.invert_yaxis()  # magnitudes: brighter up
            if col == 0:
                ax.set_ylabel(name, fontsize=8)
            ax.set_title(f"P = {10 ** windows.aux[i, 2]:.3g} d, {k} pts", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


@dataclass
class Evaluation:
    """Object-level metrics of a classifier (and a novelty bundle) on labelled windows, plus plot inputs."""

    metrics: dict
    energy_seen: np.ndarray | None = None
    energy_unseen: np.ndarray | None = None
    thresholds: dict[str, float] | None = None


# Novelty is reported at the paper's two operating points: above the 80th and 95th training percentile.
PERCENTILE_THRESHOLDS = {"p80": 80.0, "p95": 95.0}


def evaluate_bundles(windows: Windows, classifier, novelty=None, device: str = "cpu") -> Evaluation:
    """Score labelled windows with `classifier` (a Bundle; a novelty bundle also classifies).

    Objects whose label is among the classifier's classes are scored for classification; with a novelty
    bundle, those are the seen set and every other object the unseen set (positives) for novelty. A
    classifier's novelty head (k-NN of its embedding) is scored the same way, under "novelty_head".
    """
    if windows.labels is None:
        raise ValueError("evaluation needs labelled windows")
    class_names = list(classifier.class_names)
    known = np.isin(windows.labels.astype(str), class_names)
    metrics: dict = {"classifier": {"name": classifier.name, "version": classifier.version}}
    head = getattr(classifier, "novelty_head", None)
    prediction = classifier.predict(windows if head is not None else windows.subset(known), device)
    if known.any():
        seen = windows.subset(known)
        proba = prediction.proba[known] if head is not None else prediction.proba
        scores = aggregate_by_object(seen.object_ids, proba, seen.labels)
        metrics.update(classification_metrics(scores.labels, scores.predicted(class_names), class_names))
        metrics["calibration"] = calibration_section(
            seen, proba, class_names, getattr(classifier, "temperature", None)
        )
    else:
        metrics.update({"n": 0, "accuracy": float("nan"), "balanced_accuracy": float("nan")})
    metrics["n_objects_classified"] = metrics.pop("n")
    if head is not None:
        section, _, _ = novelty_section(
            windows,
            prediction.novelty_score,
            classifier.novelty_percentile,
            class_names,
            units="percentile of validation-window scores (per window length)",
        )
        metrics["novelty_head"] = {"head": {"name": head.name, "version": head.version}, **section}
    if novelty is None:
        return Evaluation(metrics)
    energy = novelty.predict(windows, device).energy
    section, energy_seen, energy_unseen = novelty_section(
        windows, energy, novelty.energy_percentile, class_names
    )
    metrics["novelty"] = {"bundle": {"name": novelty.name, "version": novelty.version}, **section}
    return Evaluation(
        metrics,
        energy_seen=energy_seen,
        energy_unseen=energy_unseen,
        thresholds=dict(novelty.novelty_thresholds),
    )


def calibration_section(windows: Windows, proba: np.ndarray, class_names: Sequence[str], table) -> dict:
    """ECE and NLL of the objects' probabilities before (T = 1) and after the bundle's temperatures.

    windows: labelled windows of known classes; proba (n, K): the served (tempered) window probabilities;
    table: the bundle's `TemperatureTable` or None (then after = before). Objects (mean of their windows'
    probabilities, as served) are grouped by their longest window's length, floored to a bucket.
    """
    lengths = np.asarray(windows.lengths, int)
    raw = proba if table is None else uncalibrated(proba, table.scales(lengths))
    before = aggregate_by_object(windows.object_ids, raw, windows.labels)
    after = aggregate_by_object(windows.object_ids, proba, windows.labels)
    lookup = {name: i for i, name in enumerate(class_names)}
    y = np.array([lookup[str(label)] for label in after.labels], int)
    buckets = np.array(CALIBRATION_BUCKETS)
    object_bucket = length_buckets(longest_windows(windows, after.object_ids))

    def measures(mask: np.ndarray) -> dict:
        out = {"n_objects": int(mask.sum())}
        for name, scores in (("before", before), ("after", after)):
            p = scores.proba[mask]
            out[f"ece_{name}"] = expected_calibration_error(p, y[mask])
            out[f"nll_{name}"] = nll(p, y[mask])
            out[f"accuracy_{name}"] = (
                float(np.mean(p.argmax(axis=1) == y[mask])) if mask.any() else float("nan")
            )
        return out

    return {
        "temperatures": None if table is None else {str(k): v for k, v in table.by_length.items()},
        "ece_bins": ECE_BINS,
        "all": measures(np.ones(len(y), bool)),
        "by_length": {str(b): measures(object_bucket == b) for b in buckets if (object_bucket == b).any()},
    }


# Object length groups of the calibration report: the window-length buckets of the shipped bundles.
CALIBRATION_BUCKETS = (50, 100, 150, 200)


def longest_windows(windows: Windows, object_ids) -> np.ndarray:
    """(m,) the longest window length [points] of each of `object_ids` (the length an object is ranked at)."""
    longest: dict = {}
    for object_id, length in zip(windows.object_ids, windows.lengths, strict=True):
        longest[object_id] = max(int(length), longest.get(object_id, 0))
    return np.array([longest[o] for o in object_ids], int)


def length_buckets(lengths: np.ndarray) -> np.ndarray:
    """Each length floored to a CALIBRATION_BUCKETS bucket (the shortest bucket below it)."""
    buckets = np.array(CALIBRATION_BUCKETS)
    return np.array([buckets[buckets <= n].max(initial=buckets[0]) for n in lengths], int)


def novelty_section(
    windows: Windows,
    window_scores: np.ndarray,
    percentile_of,
    class_names: Sequence[str],
    units: str = "percentile of training energies (per window length)",
) -> tuple[dict, np.ndarray, np.ndarray]:
    """Novelty metrics of per-window scores (AE-GMM energy or head score), as the plugin scores objects.

    An object's score is the mean of its windows', ranked by `percentile_of(scores, lengths)` among
    calibration windows of its (longest) window length. Positive = a class outside `class_names`.
    Returns (section, seen object scores, unseen object scores); the section holds P/R/F1 and the
    fraction of known objects flagged at p80 and p95 (at p95 also per object length, longest window
    floored to a bucket), and the ROC AUC of the object scores.
    """
    scores = aggregate_by_object(
        windows.object_ids, np.zeros((len(windows), 1)), windows.labels, window_scores
    )
    is_unseen = ~np.isin(scores.labels.astype(str), list(class_names))
    lengths = longest_windows(windows, scores.object_ids)
    percentile = percentile_of(scores.energy, lengths)
    section = {
        "n_seen": int((~is_unseen).sum()),
        "n_unseen": int(is_unseen.sum()),
        "unseen_classes": sorted(set(map(str, scores.labels[is_unseen]))),
        "threshold_units": units,
        **novelty_metrics(is_unseen, percentile, PERCENTILE_THRESHOLDS),
    }
    for level, value in PERCENTILE_THRESHOLDS.items():
        if section["n_seen"]:
            flagged = percentile > value
            section[level]["known_flagged_fraction"] = float(flagged[~is_unseen].mean())
    if section["n_seen"]:  # where the known objects flagged come from: young objects, or all lengths
        buckets = np.array(CALIBRATION_BUCKETS)
        bucket = length_buckets(lengths)
        known_p95 = (percentile > PERCENTILE_THRESHOLDS["p95"])[~is_unseen]
        section["p95"]["known_flagged_by_length"] = {
            str(b): {"n_seen": int(mask.sum()), "fraction": float(known_p95[mask].mean())}
            for b in buckets
            if (mask := bucket[~is_unseen] == b).any()
        }
    if is_unseen.any() and (~is_unseen).any():
        section["roc_auc"] = float(roc_auc_score(is_unseen, scores.energy))
    section["by_unseen_class"] = unseen_class_rates(scores.labels, is_unseen, percentile, scores.energy)
    return section, scores.energy[~is_unseen], scores.energy[is_unseen]


def unseen_class_rates(labels, is_unseen: np.ndarray, percentile: np.ndarray, energy: np.ndarray) -> dict:
    """Per unseen class: objects, recall at p80 / p95, and ROC AUC against all known objects.

    Neither depends on the mix, so the class a test set keeps unseen on purpose (CRTS: RS_CVn) reads apart
    from classes that are unseen only because they were too small to train."""
    labels = np.asarray(labels).astype(str)
    out = {}
    for name in sorted(set(labels[is_unseen])):
        mask = labels == name
        entry = {"n": int(mask.sum())}
        for level, value in PERCENTILE_THRESHOLDS.items():
            entry[f"{level}_recall"] = float((percentile[mask] > value).mean())
        if (~is_unseen).any():
            keep = mask | ~is_unseen
            entry["roc_auc"] = float(roc_auc_score(mask[keep], energy[keep]))
        out[name] = entry
    return out


def superclass_metrics(
    labels: Sequence[str], proba: np.ndarray, class_names: Sequence[str], mapping: dict | None = None
) -> dict:
    """Classification metrics one level up the taxonomy (models.taxonomy), per object.

    labels (m,) true labels of any survey; proba (m, K) object probabilities over the bundle's classes.
    A superclass's probability is the sum of its classes'; the prediction is the most probable superclass.
    Objects whose superclass the bundle has no class of (e.g. RS_CVn) are left out and counted under
    "unseen_superclasses": they are novelty, not classification. ValueError names labels with no superclass.
    """
    from collections import Counter

    from models.taxonomy import superclass_matrix, superclass_of, unmapped

    labels, proba = np.asarray(labels, object).astype(str), np.asarray(proba, np.float64)
    if proba.shape != (len(labels), len(class_names)):
        raise ValueError(
            f"proba {proba.shape} does not match {len(labels)} labels x {len(class_names)} classes"
        )
    missing = unmapped(labels, mapping)
    if missing:
        raise ValueError(f"labels {missing} have no superclass in models.taxonomy")
    names, matrix = superclass_matrix(class_names, mapping)
    super_proba = proba @ np.asarray(matrix)
    true = np.array([superclass_of(x, mapping) for x in labels], object)
    seen = np.isin(true, names)
    predicted = np.asarray(names, object)[np.argmax(super_proba, axis=1)] if len(names) else true
    section = {
        "superclasses": names,
        "classes_of": {
            name: [c for c, row in zip(class_names, matrix, strict=True) if row[i]]
            for i, name in enumerate(names)
        },
        **classification_metrics(true[seen], predicted[seen], names),
    }
    unseen = Counter(true[~seen])
    section["unseen_superclasses"] = dict(sorted(unseen.items()))
    section["labels_by_superclass"] = {name: sorted(set(labels[true == name])) for name in sorted(set(true))}
    return section
