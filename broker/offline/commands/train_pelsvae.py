"""Train the PELS-VAE light-curve generator (and evaluate it: reconstruction, fidelity, plots, augmentation).

DATA is FORMAT:PATH (crts or eros; repeat --data to train on both). Windows come from the plugin's own
period search and folding (the cached windows of broker.offline.dataset), with the classifiers' classes
(models.data.select_classes, RS_CVn never trained on) and by-object splits (same fractions and seed), so
the test objects here are the classifiers' test objects too. The bundle gets reconstruction metrics on the
test split. --eval-out DIR also writes evaluation.json and PNGs: fidelity as the plugin sees it (period
recovered by broker.period within 1%, class given by the classifier bundle), generated vs real folded
light curves, and sequences along period and amplitude. --evaluate BUNDLE evaluates an existing bundle
instead of training. --augmentation-experiment trains a small iTCN on CRTS with and without generated
light curves for the rare classes and reports balanced accuracy and their recalls on the validation split.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from broker.errors import BundleError, ConfigError
from broker.offline.archives.base import parse_spec
from broker.offline.commands.settings import configs_from
from broker.offline.commands.train import (
    add_common_arguments,
    known_classes,
    load_dataset,
    load_labelled_objects,
    set_threads,
)
from broker.offline.training_sets import SPLIT_FRACTIONS, split_summary

log = logging.getLogger(__name__)

RARE_CLASSES = ("HADS", "ELL", "Cep_II", "beta_lyrae", "RRd", "LPV")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", action="append", required=True, help="FORMAT:PATH (crts or eros); repeatable"
    )
    parser.add_argument("--out", type=Path, help="bundle folder to write (training)")
    parser.add_argument("--evaluate", type=Path, metavar="BUNDLE", help="evaluate this bundle, do not train")
    parser.add_argument("--eval-out", type=Path, help="folder for evaluation.json and the PNGs")
    parser.add_argument("--classifier", type=Path, help="classifier bundle for fidelity (default: shipped)")
    parser.add_argument("--n-per-class", type=int, default=100, help="generated curves per class (fidelity)")
    parser.add_argument("--augmentation-experiment", action="store_true", help="iTCN with/without generated")
    parser.add_argument("--augment-to", type=int, default=300, help="rare classes topped up to N objects")
    parser.add_argument("--augment-epochs", type=int, default=12, help="iTCN epochs per arm")
    parser.add_argument("--augment-seeds", type=int, default=3, help="training seeds per arm")
    parser.add_argument("--name", default="pelsvae-crts-eros", help="bundle name")
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--max-minutes", type=float, default=10.0, help="stop after the epoch past this")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--latent", type=int, default=4)
    parser.add_argument("--kernel", type=int, default=7)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--beta", type=float, default=0.75)
    parser.add_argument("--seq-len", type=int, default=100, help="longest training sequence")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--min-class-count", type=int, default=50)
    parser.add_argument("--exclude", nargs="*", default=["RS_CVn"], help="classes never trained on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split-seed", type=int, default=0)
    add_common_arguments(parser)
    parser.set_defaults(threads=1)  # measured here: 2 threads on 2 busy shared cores ran 6x slower than 1


def prepare(args) -> dict:
    """Window datasets, classes and splits of every --data, as PhaseSequences per split (all sources)."""
    from models.pelsvae_train import sequences_from_windows

    period_config, window_config = configs_from()
    sources, parts = [], {"train": [], "val": [], "test": []}
    for spec in args.data:
        fmt, _ = parse_spec(spec)
        dataset = load_dataset(
            spec, period_config, window_config, progress=not args.no_progress, cache_dir=args.cache_dir
        )
        classes = known_classes(dataset, args.min_class_count, args.exclude)
        splits = dataset.only_classes(classes).split(SPLIT_FRACTIONS, seed=args.split_seed)
        for name in parts:
            parts[name].append(sequences_from_windows(splits[name].windows))
        sources.append({
            "source": spec, "format": fmt, "classes": classes, "splits": split_summary(splits),
            "window_cache": dataset.meta.get("cache_key") or dataset.meta.get("source_files"),
            "test_ids": set(splits["test"].objects["object_id"]),
            "train_ids": set(splits["train"].objects["object_id"]),
        })  # fmt: skip
    sequences = {name: _concatenate(seqs) for name, seqs in parts.items()}
    class_names = sorted({c for s in sources for c in s["classes"]})
    return {"sources": sources, "sequences": sequences, "class_names": class_names,
            "period_config": period_config, "window_config": window_config}  # fmt: skip


def _concatenate(parts):
    from models.pelsvae_train import PhaseSequences

    width = max(p.phase.shape[1] for p in parts)
    fields = {}
    for key in PhaseSequences.__dataclass_fields__:
        arrays = [getattr(p, key) for p in parts]
        if arrays[0].ndim == 2 and key != "params":
            arrays = [np.pad(a, ((0, 0), (0, width - a.shape[1]))) for a in arrays]
        fields[key] = np.concatenate(arrays)
    return PhaseSequences(**fields)


def train(args, data: dict):
    from models.pelsvae import save_pelsvae_bundle
    from models.pelsvae_train import PelsVaeTrainConfig, make_bundle, reconstruction_metrics, train_pelsvae

    config = PelsVaeTrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, beta=args.beta, seq_len=args.seq_len,
        seed=args.seed, max_seconds=60 * args.max_minutes, progress=not args.no_progress,
    )  # fmt: skip
    hp = {"latent": args.latent, "hidden": args.hidden, "kernel": args.kernel, "depth": args.depth}
    seqs = data["sequences"]
    result = train_pelsvae(seqs["train"], seqs["val"], data["class_names"], hp, config)
    metadata = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": {
            "sources": [{k: v for k, v in s.items() if not k.endswith("_ids")} for s in data["sources"]],
            "classes_excluded": list(args.exclude),
            "split": {"by": "object", "fractions": list(SPLIT_FRACTIONS), "seed": args.split_seed},
        },
        "period_search": _asdict(data["period_config"]),
        "window": _asdict(data["window_config"]),
    }
    bundle = make_bundle(result, seqs["train"], seqs["val"], args.name, args.version, metadata)
    bundle.metadata["test_reconstruction"] = reconstruction_metrics(bundle, seqs["test"], config.seq_len)
    bundle.metadata["latent_regression"] = {
        "chosen": bundle.regression.kind,
        "val_rmse": bundle.regression.rmse,
    }
    save_pelsvae_bundle(bundle, args.out)
    print(
        f"generator bundle {bundle.name} -> {args.out}: {len(result.history)} epochs in "
        f"{result.seconds:.0f} s, "
        f"best val loss/point {result.best_val_loss:.3f}; regression {bundle.regression.kind} "
        f"(val RMSE {bundle.regression.rmse}); test reconstruction rmse "
        f"{bundle.metadata['test_reconstruction']['rmse_mag']:.3f} mag"
    )
    return bundle


def _asdict(config) -> dict:
    import dataclasses

    return dataclasses.asdict(config)


# ------------------------------------------------------------------------------------------- evaluation


def evaluate(args, data: dict, bundle) -> dict:
    """Reconstruction (test split), fidelity and period recovery of generated curves, plots, experiment."""
    from broker.offline.generate import CadenceSpec, check_generated, generate_lightcurves, search_and_fold
    from models.pelsvae_train import reconstruction_metrics

    out = args.eval_out
    out.mkdir(parents=True, exist_ok=True)
    default = _classifier(args.classifier)
    classifiers = {"default_bundle": default}
    report = {
        "generator": {"name": bundle.name, "version": bundle.version, "regression": bundle.regression.kind,
                      "regression_val_rmse": bundle.regression.rmse},
        "classifiers": {"default_bundle": {"name": default.name, "version": default.version,
                                           "untrained": bool(default.metadata.get("untrained", False))}},
        "test_reconstruction": reconstruction_metrics(bundle, data["sequences"]["test"], 100),
    }  # fmt: skip
    real = _real_objects(args, data)
    if args.augmentation_experiment:
        report["augmentation_experiment"], baseline = augmentation_experiment(args, data, bundle, real)
        classifiers["itcn_real_only"] = baseline  # a trained iTCN even while the default is a placeholder
        report["classifiers"]["itcn_real_only"] = {
            "name": baseline.name,
            "note": "augmentation experiment arm",
        }
    checks, examples = {}, {}
    for cadence_name in ("real_test_times", "lsst"):
        generated = []
        for label in bundle.class_names:
            pool = tuple(o.lightcurve.mjd for o in real.get(label, {}).get("test", []))
            if cadence_name == "lsst":
                cadence = CadenceSpec("lsst", None, years=3.0)
            elif pool:
                cadence = CadenceSpec("lightcurve", None, times_pool=pool)
            else:
                continue
            generated += generate_lightcurves(
                bundle, [label], args.n_per_class, cadence, seed=args.seed, first_index=len(generated)
            )
        searched = search_and_fold(generated, data["period_config"], data["window_config"])
        checks[cadence_name] = {name: check_generated(searched, c) for name, c in classifiers.items()}
        examples[cadence_name] = searched
    report["generated_checks"] = checks
    real_test = [o for parts in real.values() for o in parts.get("test", [])]
    searched_real = search_and_fold(real_test, data["period_config"], data["window_config"])
    report["real_test_recall"] = {}  # the yardstick: each classifier's recall on the real test objects
    for name, c in classifiers.items():
        per_class = check_generated(searched_real, c)["per_class"]
        report["real_test_recall"][name] = {
            k: v.get("classified_as_conditioned") for k, v in per_class.items()
        }
    pngs = [
        _plot_grid(out / "generated_vs_real.png", bundle, examples["real_test_times"], real, data),
        _plot_sequence(out / "sequence_period.png", bundle, "RRab", 0),
        _plot_sequence(out / "sequence_amplitude.png", bundle, "RRab", 1),
        _plot_sequence(out / "sequence_period_EW.png", bundle, "EW", 0),
    ]
    report["pngs"] = [str(p) for p in pngs if p]
    (out / "evaluation.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    _print_evaluation(report)
    return report


def _classifier(path):
    from models.bundle import DEFAULT_CLASSIFIER_BUNDLE, BundleFormatError, load_bundle

    try:
        return load_bundle(path or DEFAULT_CLASSIFIER_BUNDLE)
    except BundleFormatError as err:
        raise BundleError(str(err)) from err


def _real_objects(args, data: dict) -> dict:
    """class → {"train": [...], "test": [...]} real CRTS/EROS light curves of the by-object splits."""
    real: dict = {}
    for spec, source in zip(args.data, data["sources"], strict=True):
        for obj in load_labelled_objects(spec):
            if obj.label in source["classes"]:
                split = (
                    "test"
                    if obj.object_id in source["test_ids"]
                    else ("train" if obj.object_id in source["train_ids"] else None)
                )
                if split:
                    real.setdefault(obj.label, {}).setdefault(split, []).append(obj)
    return real


def augmentation_experiment(args, data: dict, bundle, real: dict):
    """Small iTCN on CRTS train windows with vs without generated rare-class curves; val-split metrics.

    Returns (report, the real-only arm's classifier bundle)."""
    from broker.offline.generate import CadenceSpec, generate_lightcurves, search_and_fold
    from models.evaluate import aggregate_by_object, classification_metrics
    from models.train import TrainConfig, train_classifier
    from models.windows import Windows

    spec = next(s for s in args.data if parse_spec(s)[0] == "crts")
    dataset = load_dataset(
        spec, data["period_config"], data["window_config"], progress=False, cache_dir=args.cache_dir
    )
    classes = known_classes(dataset, args.min_class_count, args.exclude)
    splits = dataset.only_classes(classes).split(SPLIT_FRACTIONS, seed=args.split_seed)
    train_w, val_w = splits["train"].windows, splits["val"].windows
    generated, added = [], {}
    for label in [c for c in RARE_CLASSES if c in classes]:
        n_real = len(real[label]["train"])
        n_new = max(0, args.augment_to - n_real)
        pool = tuple(o.lightcurve.mjd for o in real[label]["train"])
        generated += (
            generate_lightcurves(
                bundle,
                [label],
                n_new,
                CadenceSpec("lightcurve", None, times_pool=pool),
                seed=args.seed + 7,
                id_prefix="AUG",
                first_index=len(generated),
            )
            if n_new
            else []
        )
        added[label] = {"real_train_objects": n_real, "generated_objects": n_new}
    synthetic = search_and_fold(generated, data["period_config"], data["window_config"]).windows
    hp = {"hidden": 16, "depth": 6, "kernel": 3}
    arms = {"without": train_w, "with_generated": Windows.concatenate([train_w, synthetic])}
    evaluated = {"val": splits["val"].windows, "test": splits["test"].windows}
    results = {
        "added": added,
        "generated_windows": len(synthetic),
        "itcn_hyperparameters": hp,
        "epochs": args.augment_epochs,
        "seeds": list(range(args.seed, args.seed + args.augment_seeds)),
        "runs": [],
    }
    baseline = None
    for seed in results["seeds"]:
        run = {"seed": seed}
        for arm, windows in arms.items():
            config = TrainConfig(epochs=args.augment_epochs, seed=seed, progress=not args.no_progress,
                                 early_stopping_patience=args.augment_epochs)  # fmt: skip
            model = train_classifier(windows, val_w, "itcn", classes, hp, config)
            model = model.to_bundle(f"itcn-{arm}-seed{seed}", "0", {}, {})
            baseline = baseline or model  # the first real-only model
            run[arm] = {"train_windows": len(windows)}
            for split, w in evaluated.items():
                scores = aggregate_by_object(w.object_ids, model.predict(w).proba, w.labels)
                metrics = classification_metrics(scores.labels, scores.predicted(classes), classes)
                run[arm][split] = {
                    "balanced_accuracy": metrics["balanced_accuracy"],
                    "accuracy": metrics["accuracy"],
                    "recall": {c: metrics["per_class"][c]["recall"] for c in classes},
                }
        results["runs"].append(run)
    results["change"] = {split: _mean_change(results["runs"], split, list(added)) for split in evaluated}
    return results, baseline


def _mean_change(runs: list[dict], split: str, rare: list[str]) -> dict:
    """Mean and std over seeds of (with_generated − without): balanced accuracy and each rare recall."""

    def stats(values) -> dict:
        values = np.asarray(values, np.float64)
        return {
            "mean": float(values.mean()),
            "std": float(values.std()),
            "per_seed": values.round(4).tolist(),
        }

    def delta(run, key, cls=None):
        a, b = run["with_generated"][split], run["without"][split]
        return a[key] - b[key] if cls is None else a[key][cls] - b[key][cls]

    return {
        "balanced_accuracy": stats([delta(r, "balanced_accuracy") for r in runs]),
        "balanced_accuracy_without": stats([r["without"][split]["balanced_accuracy"] for r in runs]),
        "recall": {c: stats([delta(r, "recall", c) for r in runs]) for c in rare},
    }


# ------------------------------------------------------------------------------------------------ plots


def _plot_grid(path: Path, bundle, searched, real: dict, data: dict, per_class: int = 3) -> Path:
    """Per class: real test curves (left) and generated ones (right), folded with the found period."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from broker.offline.generate import search_and_fold
    from broker.period import centre_bands

    labels = [c for c in bundle.class_names if real.get(c, {}).get("test")]
    fig, axes = plt.subplots(len(labels), 2 * per_class, figsize=(2.2 * 2 * per_class, 1.6 * len(labels)))
    axes = np.atleast_2d(axes)
    by_label: dict = {}
    for obj, period in zip(searched.objects, searched.found_periods, strict=True):
        by_label.setdefault(obj.label, []).append((obj, period))
    for row, label in enumerate(labels):
        reals = real[label]["test"][:per_class]
        found = search_and_fold(reals, data["period_config"], data["window_config"]).found_periods
        items = [(o, p, "real") for o, p in zip(reals, found, strict=True)]
        items += [(o, p, "generated") for o, p in by_label.get(label, [])[:per_class]]
        for col, (obj, period, kind) in enumerate(items[: 2 * per_class]):
            ax = axes[row, col]
            lc = obj.lightcurve
            mag = centre_bands(lc)  # EROS: B and R on one zero point, as the plugin folds them
            if np.isfinite(period):
                phase = ((lc.mjd - lc.mjd[0]) / period) % 1.0
                ax.plot(
                    np.r_[phase, phase + 1],
                    np.r_[mag, mag],
                    ".",
                    ms=1.5,
                    color="k" if kind == "real" else "tab:blue",
                )
            ax.invert_yaxis()
            ax.set_title(f"{label} {kind} P={period:.3g}d", fontsize=6)
            ax.tick_params(labelsize=5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_sequence(path: Path, bundle, label: str, param: int, steps: int = 6) -> Path | None:
    """Noise-free templates of one class along one parameter (5th-95th percentile of its catalogue)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from models.pelsvae import PARAMS

    if label not in bundle.catalogue:
        return None
    rows = bundle.catalogue[label][:, : len(PARAMS)]
    values = np.percentile(rows[:, param], np.linspace(5, 95, steps))
    phases = np.linspace(0, 1, 200, endpoint=False)
    fig, ax = plt.subplots(figsize=(6, 4))
    colours = plt.cm.viridis(np.linspace(0, 1, steps))
    for value, colour in zip(values, colours, strict=True):
        params = np.median(rows, axis=0)
        params[param] = value
        curve = bundle.generate(label, params, phases=phases, n=1, noise=0.0, seed=0, latent_scatter=0.0)
        shown = 10**value if param < 2 else value
        ax.plot(
            phases,
            curve.clean[0] - params[2],
            color=colour,
            label=f"{PARAMS[param].removeprefix('log10_')}={shown:.3g}",
        )
    ax.invert_yaxis()
    ax.set_xlabel("phase")
    ax.set_ylabel("mag - mean")
    ax.set_title(f"{label} along {PARAMS[param]}, others at the class median ({bundle.name})", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _print_evaluation(report: dict) -> None:
    rec = report["test_reconstruction"]
    print(f"test reconstruction: rmse {rec['rmse_mag']:.3f} mag, chi2/point {rec['chi2_per_point']:.2f}")
    for cadence, by_classifier in report["generated_checks"].items():
        for name, check in by_classifier.items():
            fid = check.get("classified_as_conditioned_mean_over_classes", float("nan"))
            print(
                f"{cadence}: period within 1% {check['period_within_tolerance']:.3f}; classified as "
                f"conditioned by {name} (mean over classes) {fid:.3f}"
            )
    if "augmentation_experiment" in report:
        change = report["augmentation_experiment"]["change"]["val"]
        recall = {c: round(v["mean"], 3) for c, v in change["recall"].items()}
        print(
            f"augmentation (val, mean over seeds): balanced accuracy change "
            f"{change['balanced_accuracy']['mean']:+.3f}; rare-class recall change {recall}"
        )


def main(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    if (args.out is None) == (args.evaluate is None):
        raise ConfigError("give --out DIR to train or --evaluate BUNDLE to evaluate (one of them)")
    if args.evaluate is not None and args.eval_out is None:
        raise ConfigError("--evaluate needs --eval-out DIR")
    data = prepare(args)
    if args.out is not None:
        bundle = train(args, data)
    else:
        from models.bundle import BundleFormatError
        from models.pelsvae import load_pelsvae_bundle

        try:
            bundle = load_pelsvae_bundle(args.evaluate)
        except BundleFormatError as err:
            raise BundleError(str(err)) from err
    if args.eval_out is not None:
        evaluate(args, data, bundle)
    return 0
