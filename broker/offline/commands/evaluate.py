"""Evaluate a classifier bundle (and a novelty bundle) on a labelled archive: metrics.json, objects.csv, PNGs.

DATA is FORMAT:PATH, any archive `varstream replay` reads (ogle, asassn, crts, eros, csv), with the same
reader options (--time-col, --band-col, --class-col, --period-col, --bands, ...); every band of a
multi-band archive is used (bands are centred on one zero point, as in the plugin). Windows are built
with the period-search and window settings stored in the bundle. Objects whose class the classifier knows
are scored for classification (object = mean of its windows' probabilities) and for the calibration of
those probabilities (ECE and NLL before/after the bundle's per-length temperatures); every other object is the
unseen set for novelty (positive = unseen, flagged = mean window score above the novelty model's p80 /
p95 threshold: an AE-GMM's training energies, or a classifier bundle's k-NN head, by default crts-itcn's,
which the plugin serves beside the crts-itcn-supcon classifier), and what the classifier calls them is
counted per class (`called_unknown_classes`: e.g. OGLE classical Cepheids, a class the shipped bundle
lacks). When the data carry catalogue periods, the plugin's found periods are compared with them
(within 1%, or ×2 / ×½).

--split test (or val) keeps only that by-object split of the known classes (same fractions and seed as
training, read from the bundle) plus all unknown-class objects: the honest score of a bundle trained on
the same archive. On an archive the bundle trained on with superclass labels (`train --superclass-labels`,
EROS-1 for crts-eros-itcn-supcon) only its test objects were held out: --split test scores those one level
up (as training recorded them in `test_metrics_superclass_labels`), with novelty at superclass level only.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from broker.errors import BundleError, ConfigError
from broker.offline.archives.options import add_reader_arguments, reader_options
from broker.offline.commands.settings import configs_from
from broker.offline.commands.train import (
    add_common_arguments,
    load_dataset,
    set_threads,
)
from broker.offline.training_sets import (
    bundle_labels,
    held_out_superclass_objects,
    recorded_splits,
    trained_one_level_up,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", type=Path, help="classifier bundle (default: the shipped one)")
    parser.add_argument(
        "--novelty-bundle",
        help="an AE-GMM bundle, or a classifier bundle whose k-NN head scores; 'none' for none "
        "(default: the shipped one, crts-itcn's head)",
    )
    parser.add_argument("--data", required=True, help="FORMAT:PATH (ogle, asassn, crts, eros or csv)")
    parser.add_argument("--out", required=True, type=Path, help="report folder")
    parser.add_argument("--split", choices=("all", "val", "test"), default="all", help="objects to score")
    parser.add_argument("--max-points", type=int, help="use only each object's first N points")
    add_common_arguments(parser)
    add_reader_arguments(parser)


def load_bundles(bundle_path, novelty_arg):
    """(classifier, novelty or None), defaults from models.bundle; the pair must share window settings."""
    from broker.runtime import require_same_settings
    from models.bundle import (
        DEFAULT_CLASSIFIER_BUNDLE,
        DEFAULT_NOVELTY_BUNDLE,
        BundleFormatError,
        load_bundle,
    )
    from models.head_novelty import as_novelty_model

    try:
        classifier = load_bundle(bundle_path or DEFAULT_CLASSIFIER_BUNDLE)
        if novelty_arg is None:
            novelty = (
                classifier
                if classifier.kind == "novelty"
                else as_novelty_model(load_bundle(DEFAULT_NOVELTY_BUNDLE))
            )
        elif str(novelty_arg).lower() == "none":
            novelty = None
        else:  # an AE-GMM bundle, or a classifier bundle whose k-NN head scores novelty
            novelty = as_novelty_model(load_bundle(novelty_arg))
    except BundleFormatError as err:
        raise BundleError(str(err)) from err
    if novelty is not None:
        require_same_settings(classifier, novelty)
    return classifier, novelty


def restrict_to_split(dataset, classifier, split: str, one_level_up: str = ""):
    """That by-object split of the classifier's classes (as recorded in the bundle) + all other objects.

    one_level_up: the spec of an archive the bundle trained on one level up (`--superclass-labels`, EROS-1
    for crts-eros-itcn-supcon; `trained_one_level_up`), whose test objects alone were held out: those,
    under their superclass markers, and no unseen objects."""
    if one_level_up:
        if split != "test":
            raise ConfigError(
                f"{one_level_up}: {classifier.name} trained on it with superclass labels, its {split} "
                "objects too (only its test objects were held out): use --split test or all"
            )
        held_out = held_out_superclass_objects(dataset, classifier)
        none = dataset.only_classes([])
        return (none if held_out is None else held_out), none
    part = recorded_splits(dataset, classifier)[split]
    others = set(dataset.objects["label"]) - set(classifier.class_names)
    unseen = dataset.only_classes(others)
    return part, unseen


def main(args: argparse.Namespace) -> int:
    from models.evaluate import evaluate_bundles, period_recovery, write_report
    from models.windows import Windows

    set_threads(args.threads)
    classifier, novelty = load_bundles(args.bundle, args.novelty_bundle)
    period_config, window_config = configs_from(classifier.period_search, classifier.window)
    dataset = load_dataset(
        args.data,
        period_config,
        window_config,
        args.max_points,
        not args.no_progress,
        args.cache_dir,
        options=reader_options(args),
    )
    dataset = bundle_labels(dataset, classifier, args.data)  # e.g. OGLE "Cep" -> DCEP, as in training
    objects = dataset.objects
    windows = dataset.windows
    one_level_up = args.split != "all" and trained_one_level_up(classifier, args.data)
    if args.split != "all":
        part, unseen = restrict_to_split(dataset, classifier, args.split, args.data if one_level_up else "")
        parts = [p.windows for p in (part, unseen) if len(p.windows)]
        windows = Windows.concatenate(parts)
        objects = objects[
            objects["object_id"].isin(set(part.objects["object_id"]) | set(unseen.objects["object_id"]))
        ]
    if windows.labels is None or not len(windows):
        raise ConfigError(f"{args.data}: no labelled windows to evaluate")
    # labels one level up (held-out superclass-labelled objects) are no unseen classes: novelty is scored
    # at superclass level only, where they are known superclasses (its false-alarm rate on that survey)
    evaluation = evaluate_bundles(windows, classifier, None if one_level_up else novelty, device=args.device)
    if one_level_up:
        evaluation.metrics.pop("novelty_head", None)
    called = called_unknown_classes(windows, classifier, args.device)
    metrics = {
        "data": args.data,
        "split": args.split,
        "max_points": args.max_points,
        "n_objects": len(objects),
        "n_objects_with_windows": int((objects["n_windows"] > 0).sum()),
        "skipped": dict(Counter(objects.loc[objects["n_windows"] == 0, "skip_reason"].astype(str))),
        **evaluation.metrics,
    }
    if called:
        metrics["called_unknown_classes"] = called
    metrics["superclass"] = superclass_report(windows, classifier, args.device, novelty)
    if metrics.get("novelty") and evaluation.energy_seen is not None:
        add_novelty_rates(metrics["novelty"], evaluation.energy_seen, evaluation.energy_unseen)
    with_catalogue = objects[np.isfinite(objects["catalogue_period"].to_numpy(float))]
    if len(with_catalogue):
        metrics["period_recovery"] = period_recovery(
            with_catalogue["period_days"].to_numpy(float), with_catalogue["catalogue_period"].to_numpy(float)
        )
    args.out.mkdir(parents=True, exist_ok=True)
    objects.to_csv(args.out / "objects.csv", index=False)  # per object: points, periods, skip reason
    examples = windows.subset(_examples_per_class(windows, 3))
    written = write_report(
        args.out, metrics, evaluation.energy_seen, evaluation.energy_unseen, evaluation.thresholds, examples
    )
    _print_summary(metrics, written)
    _print_superclass(metrics["superclass"])
    return 0


def superclass_report(windows, classifier, device: str, novelty=None) -> dict:
    """Metrics one level up models.taxonomy (class probabilities summed per superclass), on every object,
    so coarse or foreign labels (EROS-1 "cepheid", OGLE "Cep_F") are scored too; {"skipped": why} when a
    label or a bundle class has no superclass. With a served novelty score (the classifier's head, else the
    novelty bundle), "novelty" holds the same novelty
    metrics with unseen = a superclass the bundle has no class of (RS_CVn): on a survey whose superclasses
    are all known, its known_flagged_fraction is the false-alarm rate there."""
    from dataclasses import replace

    from models.evaluate import aggregate_by_object, novelty_section, superclass_metrics
    from models.taxonomy import superclass_of, unmapped

    missing = unmapped([*map(str, set(windows.labels)), *classifier.class_names])
    if missing:
        return {"skipped": f"labels {missing} have no superclass in models.taxonomy"}
    prediction = classifier.predict(windows, device)
    scores = aggregate_by_object(windows.object_ids, prediction.proba, windows.labels)
    section = superclass_metrics(scores.labels, scores.proba, list(classifier.class_names))
    # the served novelty score: the classifier's own head when it has one, else the novelty bundle
    if getattr(classifier, "novelty_head", None) is not None:
        score, percentile_of = prediction.novelty_score, classifier.novelty_percentile
    elif novelty is not None:
        score, percentile_of = novelty.predict(windows, device).energy, novelty.energy_percentile
    else:
        return section
    labels = np.array([superclass_of(str(x)) for x in windows.labels], object)
    section["novelty"], _, _ = novelty_section(
        replace(windows, labels=labels), score, percentile_of, section["superclasses"]
    )
    return section


def _print_superclass(section: dict) -> None:
    if "skipped" in section:
        print(f"superclass: skipped ({section['skipped']})")
        return
    unseen = ", ".join(f"{k} {v}" for k, v in section["unseen_superclasses"].items()) or "none"
    print(
        f"superclass ({section['n']} objects; unseen superclasses: {unseen}): "
        f"accuracy {section['accuracy']:.3f}, balanced accuracy {section['balanced_accuracy']:.3f}"
    )
    _print_novelty("superclass novelty", section.get("novelty"))


def add_novelty_rates(novelty: dict, energy_seen: np.ndarray, energy_unseen: np.ndarray) -> None:
    """Add what does not depend on the unseen/seen mix (issue 11): the ROC AUC of the objects' mean
    window energies (unseen = positive) and, per threshold level, the fraction of known objects flagged."""
    from sklearn.metrics import roc_auc_score

    seen, unseen = np.asarray(energy_seen, float), np.asarray(energy_unseen, float)
    if len(seen) and len(unseen):
        is_unseen = np.r_[np.zeros(len(seen), bool), np.ones(len(unseen), bool)]
        novelty["roc_auc"] = float(roc_auc_score(is_unseen, np.r_[seen, unseen]))
    for level in ("p80", "p95"):
        m = novelty.get(level)
        if m is not None and novelty["n_seen"]:
            known_flagged = m["n_flagged"] - round(m["recall"] * novelty["n_unseen"])
            m["known_flagged_fraction"] = known_flagged / novelty["n_seen"]


def called_unknown_classes(windows, classifier, device: str) -> dict[str, dict[str, int]]:
    """true label -> {predicted class: objects} for objects whose class the classifier does not know."""
    from models.evaluate import aggregate_by_object

    unknown = ~np.isin(windows.labels.astype(str), list(classifier.class_names))
    if not unknown.any():
        return {}
    part = windows.subset(unknown)
    scores = aggregate_by_object(part.object_ids, classifier.predict(part, device).proba, part.labels)
    predicted = scores.predicted(list(classifier.class_names))
    called: dict[str, Counter] = {}
    for label, name in zip(map(str, scores.labels), predicted, strict=True):
        called.setdefault(label, Counter())[str(name)] += 1
    return {label: dict(counts.most_common()) for label, counts in sorted(called.items())}


def _examples_per_class(windows, per_class: int) -> np.ndarray:
    """Indices of the first full-length windows of each class (any length when a class has none)."""
    chosen = []
    for label in sorted(set(map(str, windows.labels))):
        index = np.flatnonzero(windows.labels == label)
        full = index[windows.lengths[index] == windows.window_length]
        chosen.extend((full if len(full) >= per_class else index)[:per_class])
    return np.asarray(chosen, int)


def _print_summary(metrics: dict, written: list[Path]) -> None:
    print(
        f"objects {metrics['n_objects']} (classified {metrics['n_objects_classified']}): "
        f"accuracy {metrics['accuracy']:.3f}, balanced accuracy {metrics['balanced_accuracy']:.3f}"
    )
    for name, m in metrics.get("per_class", {}).items():
        print(f"  {name:12s} recall {m['recall']:.3f}  precision {m['precision']:.3f}  n {m['support']}")
    for label, counts in metrics.get("called_unknown_classes", {}).items():
        print(f"  unknown class {label!r} called: " + ", ".join(f"{c} {n}" for c, n in counts.items()))
    _print_calibration(metrics.get("calibration"))
    for key in ("novelty", "novelty_head"):
        _print_novelty(key, metrics.get(key))
    if "period_recovery" in metrics:
        p = metrics["period_recovery"]
        print(
            f"period recovery (n {p['n']}): within 1% {p['within_tolerance']:.3f}, "
            f"with x2/x0.5 aliases {p['within_tolerance_or_alias']:.3f}"
        )
    print("wrote " + ", ".join(str(p) for p in written) + " and objects.csv")


def _print_calibration(calibration: dict | None) -> None:
    if not calibration:
        return
    temperatures = calibration["temperatures"]
    scales = ", ".join(f"{k}: {v:.3f}" for k, v in temperatures.items()) if temperatures else "none (T = 1)"
    print(f"calibration (objects; temperatures per window length {scales}):")
    rows = {"all": calibration["all"], **{f"L{k}": v for k, v in calibration["by_length"].items()}}
    for name, m in rows.items():
        print(
            f"  {name:4s} n {m['n_objects']:4d}: ECE {m['ece_before']:.3f} -> {m['ece_after']:.3f}, "
            f"NLL {m['nll_before']:.3f} -> {m['nll_after']:.3f}"
        )


def _print_novelty(key: str, novelty: dict | None) -> None:
    if not novelty:
        return
    unseen = ", ".join(novelty["unseen_classes"])
    print(f"{key}: {novelty['n_unseen']} unseen ({unseen}) vs {novelty['n_seen']} seen")
    for level in ("p80", "p95"):
        m = novelty[level]
        print(
            f"  {level}: precision {m['precision']:.3f} recall {m['recall']:.3f} f1 {m['f1']:.3f} "
            f"known flagged {m.get('known_flagged_fraction', float('nan')):.3f}"
        )
    if "roc_auc" in novelty:
        print(f"  ROC AUC {novelty['roc_auc']:.3f}")
    for name, rates in novelty.get("by_unseen_class", {}).items():
        auc = f", ROC AUC {rates['roc_auc']:.3f}" if "roc_auc" in rates else ""
        print(
            f"  unseen {name} ({rates['n']}): recall p80 {rates['p80_recall']:.3f} "
            f"p95 {rates['p95_recall']:.3f}{auc}"
        )
    by_length = novelty["p95"].get("known_flagged_by_length", {})
    if by_length:
        rates = ", ".join(f"L{k} {v['fraction']:.3f} (n {v['n_seen']})" for k, v in by_length.items())
        print(f"  p95 known flagged per object length: {rates}")
