"""Compare iTCN, TCN, iResNet and a random forest side by side on one by-object validation split.

All models see the same windows (the plugin's own period search + folding) of the same training objects
and are scored on the same validation objects (object = mean of its windows' probabilities): accuracy and
balanced accuracy, then accuracy when each validation object has only its first 50 / 100 / 200 points
(period search and folding redone on the cut light curves), and the AE-GMM's novelty precision / recall /
F1 at the p80 / p95 training-energy thresholds with the excluded class (RS_CVn) as the unseen set.
Writes DIR/comparison.json and DIR/comparison.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from broker.offline.commands.settings import add_period_settings_argument, settings_named
from broker.offline.commands.train import (
    add_common_arguments,
    known_classes,
    load_dataset,
    load_labelled_objects,
    set_threads,
)
from broker.offline.training_sets import SPLIT_FRACTIONS, split_summary

log = logging.getLogger(__name__)

MODELS = ("itcn", "tcn", "iresnet", "rf")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="FORMAT:PATH (crts)")
    parser.add_argument("--out", required=True, type=Path, help="report folder")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--points", nargs="*", type=int, default=[50, 100, 200], help="points per object")
    parser.add_argument("--hidden", type=int, help="hidden channels of the convolutional nets")
    parser.add_argument("--depth", type=int)
    parser.add_argument("--kernel", type=int)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--max-minutes", type=float, default=12.0, help="training budget per network")
    parser.add_argument(
        "--novelty-bundle", type=Path, help="AE-GMM bundle trained on this split's train part"
    )
    parser.add_argument("--no-novelty", action="store_true", help="skip the AE-GMM part")
    parser.add_argument("--novelty-minutes", type=float, default=20.0, help="AE-GMM budget when trained here")
    parser.add_argument("--min-class-count", type=int, default=50)
    parser.add_argument("--exclude", nargs="*", default=["RS_CVn"], help="classes never trained on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split-seed", type=int, default=0)
    add_period_settings_argument(parser)
    add_common_arguments(parser)


def object_scores(proba: np.ndarray, windows, class_names) -> dict:
    """Object-level accuracy and balanced accuracy of window probabilities."""
    from models.evaluate import aggregate_by_object, classification_metrics

    scores = aggregate_by_object(windows.object_ids, proba, windows.labels)
    metrics = classification_metrics(scores.labels, scores.predicted(class_names), class_names)
    return {
        "n_objects": metrics["n"],
        "accuracy": metrics["accuracy"],
        "balanced_accuracy": metrics["balanced_accuracy"],
        "recall": {name: m["recall"] for name, m in metrics["per_class"].items()},
    }


def main(args: argparse.Namespace) -> int:
    from models.baseline_rf import RandomForestBaseline
    from models.bundle import run_model
    from models.train import TrainConfig, train_classifier

    set_threads(args.threads)
    started = time.monotonic()
    period_config, window_config = settings_named(args)
    progress = not args.no_progress
    dataset = load_dataset(
        args.data, period_config, window_config, progress=progress, cache_dir=args.cache_dir
    )
    classes = known_classes(dataset, args.min_class_count, args.exclude)
    splits = dataset.only_classes(classes).split(SPLIT_FRACTIONS, seed=args.split_seed)
    train, val = splits["train"].windows, splits["val"].windows
    config = TrainConfig(
        epochs=args.epochs,
        seed=args.seed,
        max_seconds=60 * args.max_minutes,
        progress=progress,
        device=args.device,
    )
    hp = {k: v for k, v in {"hidden": args.hidden, "depth": args.depth, "kernel": args.kernel}.items() if v}

    predictors, report = {}, {"models": {}}
    for name in args.models:
        began = time.monotonic()
        if name == "rf":
            forest = RandomForestBaseline(classes, seed=args.seed).fit(train)
            predictors[name] = forest.predict_proba
            details = {"n_estimators": forest.forest.n_estimators, "features": "models.baseline_rf"}
        else:
            result = train_classifier(train, val, name, classes, hp, config)
            predictors[name] = _network_predictor(result.model, run_model)
            details = {
                "hyperparameters": result.hyperparameters,
                "best_epoch": result.best_epoch,
                "epochs_run": len(result.history),
            }
        report["models"][name] = {
            **object_scores(predictors[name](val), val, classes),
            **details,
            "train_seconds": round(time.monotonic() - began, 1),
        }
        log.info("%s: %s", name, report["models"][name])

    report["accuracy_vs_points"] = _accuracy_vs_points(args, splits["val"], predictors, classes, progress)
    if not args.no_novelty:
        report["novelty"] = _novelty(args, dataset, train, val, classes, progress)
    report.update(
        {
            "data": args.data,
            "classes": classes,
            "split": {"by": "object", "fractions": list(SPLIT_FRACTIONS), "seed": args.split_seed},
            "splits": split_summary(splits),
            "seconds": round(time.monotonic() - started, 1),
        }
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "comparison.json").write_text(json.dumps(report, indent=1) + "\n")
    table = _markdown(report)
    (args.out / "comparison.md").write_text(table)
    print(table)
    return 0


def _novelty(args, dataset, train, val, classes, progress) -> dict:
    """AE-GMM novelty on the validation objects (seen) + every object of the excluded classes (unseen),
    scored as `varstream evaluate` scores it (mean window energy ranked among training windows of its
    length), plus the AE-GMM's own classification of the validation objects."""
    from models.bundle import load_bundle
    from models.evaluate import evaluate_bundles
    from models.train import TrainConfig, energy_quantiles_by_length, train_aegmm

    if args.novelty_bundle:
        bundle, source = load_bundle(args.novelty_bundle), str(args.novelty_bundle)
    else:
        config = TrainConfig(
            epochs=args.epochs, seed=args.seed, max_seconds=60 * args.novelty_minutes, progress=progress
        )
        bundle = train_aegmm(train, val, classes, None, config).to_bundle("compare-aegmm", "0", {}, {})
        bundle.energy_quantiles_by_length = energy_quantiles_by_length(
            bundle.model, train, TrainConfig().buckets, seed=args.seed
        )
        source = "trained here"
    unseen = dataset.only_classes(args.exclude).windows
    metrics = evaluate_bundles(val.concatenate([val, unseen]), bundle, bundle).metrics
    return {
        "source": source,
        **metrics["novelty"],
        "aegmm_classifier": {k: metrics[k] for k in ("accuracy", "balanced_accuracy", "per_class")},
    }


def _network_predictor(model, run_model):
    def predict(windows):
        return run_model(model, "classifier", windows, "cpu", 1024).proba

    return predict


def _accuracy_vs_points(args, val_split, predictors, classes, progress) -> dict:
    """Object accuracy of each model when every validation object has only its first N points."""
    from broker.offline.dataset import DEFAULT_CACHE_DIR, build_windows

    if not args.points:
        return {}
    period_config, window_config = settings_named(args)
    keep = set(val_split.objects["object_id"])
    objects = [obj for obj in load_labelled_objects(args.data) if obj.object_id in keep]
    out = {}
    for n_points in args.points:
        cut = build_windows(
            objects,
            period_config,
            window_config,
            cache_dir=args.cache_dir or DEFAULT_CACHE_DIR,
            progress=progress,
            max_points=n_points,
            tag="val-first",
        )
        windows = cut.windows
        row = {"n_objects": len(objects), "n_objects_with_windows": int((cut.objects["n_windows"] > 0).sum())}
        for name, predict in predictors.items():
            row[name] = object_scores(predict(windows), windows, classes) if len(windows) else None
        out[str(n_points)] = row
    return out


def _markdown(report: dict) -> str:
    lines = [
        "| model | val objects | accuracy | balanced accuracy |",
        "|---|---|---|---|",
    ]
    for name, m in report["models"].items():
        lines.append(f"| {name} | {m['n_objects']} | {m['accuracy']:.3f} | {m['balanced_accuracy']:.3f} |")
    if report.get("accuracy_vs_points"):
        names = list(report["models"])
        lines += ["", "| first N points | " + " | ".join(f"{n} acc / bal" for n in names) + " |"]
        lines.append("|---" * (len(names) + 1) + "|")
        for n_points, row in report["accuracy_vs_points"].items():
            cells = [
                f"{row[n]['accuracy']:.3f} / {row[n]['balanced_accuracy']:.3f}" if row.get(n) else "-"
                for n in names
            ]
            lines.append(f"| {n_points} ({row['n_objects_with_windows']} obj) | " + " | ".join(cells) + " |")
    novelty = report.get("novelty")
    if novelty:
        lines += [
            "",
            f"AE-GMM novelty ({novelty['n_unseen']} unseen {', '.join(novelty['unseen_classes'])} "
            f"vs {novelty['n_seen']} seen; {novelty['source']}); its own classification: accuracy "
            f"{novelty['aegmm_classifier']['accuracy']:.3f}, balanced "
            f"{novelty['aegmm_classifier']['balanced_accuracy']:.3f}",
            "",
            "| threshold | precision | recall | F1 |",
            "|---|---|---|---|",
        ]
        for level in ("p80", "p95"):
            m = novelty[level]
            lines.append(f"| {level} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} |")
    return "\n".join(lines) + "\n"
