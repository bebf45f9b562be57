"""Train a classifier (iTCN / TCN / iResNet) or novelty (AE-GMM) bundle on one or more labelled archives.

DATA is FORMAT:PATH, any archive `varstream replay` reads (ogle, asassn, crts, eros, csv), with the same
reader options (each passed to the formats that take it); --data may be given more than once (CRTS plus
the OGLE-IV Cepheids, which become class DCEP: broker.offline.training_sets). Windows come from the
plugin's own period search and folding (broker.offline.dataset, cached under .cache/windows/), never from
catalogue periods; --period-settings picks that search (v1, the shipped bundles', or v2) and the bundle
records it for the plugin. Classes: the union over the archives of those with at least --min-class-count
objects, minus --exclude (RS_CVn, the unseen class of the novelty benchmark). Each archive is split by
object (train/val/test, stratified), and a calibration split is carved out of train: validation picks the
epoch, the calibration split fits the k-NN novelty head and the per-length temperatures, and the test
split's metrics and the ids of every split are written into the bundle's metadata.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

from broker.errors import ArchiveError, ConfigError
from broker.offline.archives.options import add_reader_arguments, reader_options
from broker.offline.commands.settings import (
    add_period_settings_argument,
    configs_from,
    settings_named,
)
from broker.offline.training_sets import (
    CALIBRATION_FRACTION,
    SPLIT_FRACTIONS,
    archive_test_metrics,
    calibration_split,
    differing_ids,
    load_archives,
    split_datasets,
    split_ids,
    split_summary,
    superclass_labelled,
    superclass_objects_train_only,
    superclass_test_metrics,
)

log = logging.getLogger(__name__)

# models.ensemble.COMBINES / EMBEDDINGS, spelled out so that parsing the command line imports no torch
ENSEMBLE_COMBINES = ("logits", "proba")
ENSEMBLE_EMBEDDINGS = ("concat-unit", "concat")
CROP_PROBABILITY = 0.3  # models.train.TrainConfig.crop_probability, for the same reason (a test checks)
AUX_INPUTS = ("mean_mag", "std_mag", "log10_period")  # models.windows.AUX, likewise (a test checks)
SUPERCLASS_WEIGHT = 1.0  # models.train.TrainConfig.superclass_weight, likewise (a test checks)


# ----------------------------------------------------------------- helpers shared with evaluate / compare


def crts_source(path: Path) -> Path:
    """The CRTS light-curve source: a folder of CSVs, or the .tar.xz (given, or the one inside `path`)."""
    from models.data import CRTS_PERIODS_CSV

    if path.is_file() or any(p.name != CRTS_PERIODS_CSV for p in path.glob("*-*.csv")):
        return path
    archives = sorted(path.glob("*.tar*"))
    if len(archives) != 1:
        raise ArchiveError(
            f"{path}: expected <ID>-<CLASS>.csv files or exactly one .tar.xz, found {archives}"
        )
    return archives[0]


def load_labelled_objects(spec: str, options: dict | None = None):
    """Read the light curves of FORMAT:PATH (any archive format) with reader options (list)."""
    from broker.offline.archives.options import open_archives

    (archive,) = open_archives([spec], options or {})
    objects = list(archive)
    if archive.report.bad_rows or archive.report.dropped or archive.report.notes:
        log.warning("%s: %s", spec, archive.report.summary())
    return objects


def load_archives_for(args: argparse.Namespace, period_config, window_config) -> list:
    """The command's --data archives (`training_sets.load_archives`): windows through the window cache,
    each with the reader options its format takes, relabelled to the bundle's class names, ids unique."""

    def load(spec: str, options: dict):
        progress, cache_dir = not args.no_progress, args.cache_dir
        return load_dataset(spec, period_config, window_config, None, progress, cache_dir, options)

    return load_archives(args.data, load, reader_options(args))


def load_dataset(
    spec: str,
    period_config,
    window_config,
    max_points: int | None = None,
    progress: bool = True,
    cache_dir: Path | None = None,
    options: dict | None = None,
):
    """Windows (a `models.window_dataset.WindowDataset`) of every object in FORMAT:PATH, via the cache.

    The shipped CRTS tarball and EROS folder (no reader options) use caches keyed on their files, so a
    hit skips reading them; every other archive is read and keyed on its light curves' content.
    """
    from broker.offline import dataset
    from broker.offline.archives.base import parse_spec

    fmt, path = parse_spec(spec)
    cache_dir = cache_dir or dataset.DEFAULT_CACHE_DIR
    configs = {"period_config": period_config, "window_config": window_config, "max_points": max_points}
    if not options and fmt == "crts" and crts_source(path).is_file():
        return dataset.load_or_build_crts(
            archive=crts_source(path), cache_dir=cache_dir, progress=progress, **configs
        )
    if not options and fmt == "eros":
        return dataset.load_or_build_eros(folder=path, cache_dir=cache_dir, progress=progress, **configs)
    objects = load_labelled_objects(spec, options)
    return dataset.build_windows(objects, cache_dir=cache_dir, progress=progress, tag=fmt, **configs)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every model command shares: threads, device, window cache, progress bars."""
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (0: torch's default; on a shared 2-core box 1 trains 2-3x faster than 2)",
    )
    parser.add_argument("--cache-dir", type=Path, help="window cache folder (default: <repo>/.cache/windows)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def known_classes(dataset, min_count: int, exclude: list[str]) -> list[str]:
    """Classes to train on: `models.data.select_classes` over the objects that have windows."""
    from models.data import select_classes

    rows = dataset.objects[dataset.objects["n_windows"] > 0]
    records = [_Record(o, lab) for o, lab in zip(rows["object_id"], rows["label"], strict=True)]
    classes = select_classes(records, min_count=min_count, exclude=exclude)
    if len(classes) < 2:
        raise ConfigError(
            f"need at least 2 classes with >= {min_count} objects (excluding {exclude}), got {classes}"
        )
    return classes


@dataclasses.dataclass(frozen=True)
class _Record:
    object_id: str
    label: str


def set_threads(threads: int) -> None:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------- command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        required=True,
        action="append",
        help="FORMAT:PATH (ogle, asassn, crts, eros or csv); repeat it to train on several archives",
    )
    parser.add_argument("--kind", choices=("classifier", "novelty"), default="classifier")
    parser.add_argument("--arch", choices=("itcn", "tcn", "iresnet"), default="itcn", help="classifier arch")
    parser.add_argument("--out", required=True, type=Path, help="bundle folder to write")
    parser.add_argument("--name", help="bundle name (default: <format>-<arch>, formats joined by '+')")
    parser.add_argument("--version", default="1.0.0", help="bundle version")
    parser.add_argument("--hidden", type=int, help="hidden channels / GRU units")
    parser.add_argument("--depth", type=int, help="residual blocks (classifier)")
    parser.add_argument("--kernel", type=int, help="kernel size (classifier)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, help="Adam learning rate (default 0.005 / AE-GMM 0.002)")
    parser.add_argument("--patience", type=int, default=10, help="early-stopping patience in epochs")
    parser.add_argument("--plateau-patience", type=int, default=4, help="epochs without gain before LR x0.1")
    parser.add_argument("--max-minutes", type=float, help="stop after the epoch that passes this budget")
    parser.add_argument("--class-weighting", choices=("sqrt", "inverse", "none"), default="sqrt")
    parser.add_argument(
        "--supcon-weight",
        type=float,
        default=0.0,
        help="classifier: add this weight of supervised contrastive loss on the embedding (Khosla et al. "
        "2020; the k-NN novelty head's input) to the cross entropy (default 0: cross entropy alone)",
    )
    parser.add_argument(
        "--crop-probability",
        type=_probability,
        default=CROP_PROBABILITY,
        help="share of training windows cut each epoch to a random shorter bucket (50/100/150 points), "
        "so the network learns young objects (default %(default)s)",
    )
    parser.add_argument(
        "--ignore-aux",
        nargs="+",
        choices=AUX_INPUTS,
        default=[],
        metavar="INPUT",
        help="classifier: auxiliary inputs the network never sees; mean_mag ties a class to the survey "
        "and band its training examples came from",
    )
    parser.add_argument(
        "--superclass-labels",
        nargs="+",
        default=[],
        metavar="ARCHIVE",
        help="classifier: the labels of these --data archives (a format, or the FORMAT:PATH as given) name "
        "superclasses only (eros: binary, cepheid, rr_lyrae, mira); their objects train through a "
        "hierarchical loss (-log of the superclass's summed probability) and are kept out of validation, "
        "calibration and the class test metrics (scored one level up instead)",
    )
    parser.add_argument(
        "--superclass-weight",
        type=_positive,
        default=SUPERCLASS_WEIGHT,
        help="weight of the superclass-labelled windows' loss (default %(default)s)",
    )
    parser.add_argument("--min-class-count", type=int, default=50, help="fewer objects: class not trained")
    parser.add_argument("--exclude", nargs="*", default=["RS_CVn"], help="classes never trained on")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--split-seed", type=int, default=0, help="by-object split seed")
    parser.add_argument(
        "--calibration-fraction",
        type=float,
        default=CALIBRATION_FRACTION,
        help="share of each class's training objects carved out to fit the novelty head and the "
        "temperatures (default 1/7: 10%% of all objects); 0: fit them on the validation split",
    )
    parser.add_argument(
        "--members",
        type=int,
        default=1,
        help="classifier: train a deep ensemble of this many networks (seeds --seed, --seed + 1, ...) "
        "served as one (models.ensemble)",
    )
    parser.add_argument(
        "--members-from",
        nargs="+",
        type=Path,
        metavar="BUNDLE",
        help="classifier: build the ensemble from these trained bundles instead of training (same data, "
        "classes, split and period settings as this command's, else it stops)",
    )
    parser.add_argument(
        "--combine",
        choices=ENSEMBLE_COMBINES,
        default="logits",
        help="ensemble: average the members' logits or their probabilities",
    )
    parser.add_argument(
        "--ensemble-embedding",
        choices=ENSEMBLE_EMBEDDINGS,
        default="concat-unit",
        help="ensemble: the novelty head's input, the members' embeddings joined (each at unit length, "
        "or as they are)",
    )
    add_period_settings_argument(parser)
    add_common_arguments(parser)
    add_reader_arguments(parser)


def member_bundles(paths: list[Path], classes: list[str], period_config, window_config, splits: dict) -> list:
    """The trained classifier bundles of --members-from, checked to fit this run: same classes, period and
    window settings (as configs: keys a bundle predates take their defaults), and the very train/val/test
    ids of this run's split (else ConfigError naming why)."""
    from models.bundle import BundleFormatError, load_bundle

    ids = split_ids(splits)
    bundles = []
    for path in paths:
        try:
            bundle = load_bundle(path, with_novelty_head=False)
        except BundleFormatError as err:
            raise ConfigError(f"--members-from {path}: {err}") from err
        if bundle.kind != "classifier":
            raise ConfigError(f"--members-from {path}: a {bundle.kind!r} bundle, not a classifier")
        if bundle.class_names != list(classes):
            raise ConfigError(f"--members-from {path}: its classes {bundle.class_names} are not {classes}")
        if configs_from(bundle.period_search, bundle.window) != (period_config, window_config):
            raise ConfigError(f"--members-from {path}: its period search or window settings differ")
        recorded = bundle.metadata.get("data", {}).get("split", {})
        differ = differing_ids(recorded, ids, ("train_ids", "val_ids", "test_ids"), unrecorded_match=False)
        if differ:
            raise ConfigError(f"--members-from {path}: its {differ[0]} differ from this run's split")
        bundles.append(bundle)
    return bundles


def main(args: argparse.Namespace) -> int:
    from models import aegmm, itcn
    from models.bundle import save_bundle
    from models.calibration_fit import attach, fit_temperatures
    from models.evaluate import evaluate_bundles
    from models.novelty_fit import fit_knn_head
    from models.onnx_export import export_onnx
    from models.taxonomy import is_superclass_label
    from models.train import (
        TrainConfig,
        energy_quantiles_by_length,
        ensemble_result,
        train_aegmm,
        train_classifier,
        train_ensemble,
    )
    from models.window_dataset import WindowDataset

    if args.ignore_aux and (args.kind != "classifier" or args.members_from):
        raise ConfigError(
            "--ignore-aux applies to a classifier trained here, not to --kind novelty or --members-from"
        )
    if args.superclass_labels and (args.kind != "classifier" or args.members_from or args.members > 1):
        raise ConfigError(
            "--superclass-labels applies to one classifier trained here, not to --kind novelty or ensembles"
        )
    set_threads(args.threads)
    period_config, window_config = settings_named(args)
    archives = superclass_labelled(
        load_archives_for(args, period_config, window_config), args.superclass_labels
    )
    datasets = [a.dataset for a in archives]
    dataset = WindowDataset.concatenate(datasets)
    classes = known_classes(dataset, args.min_class_count, args.exclude)
    markers = [c for c in classes if is_superclass_label(c)]
    classes = [c for c in classes if c not in markers]
    if args.superclass_labels and (not markers or len(classes) < 2):
        raise ConfigError(
            f"--superclass-labels: need a superclass label and 2 class labels with --min-class-count "
            f"{args.min_class_count} objects; got {markers} and {classes}"
        )
    splits = split_datasets(
        datasets, classes + markers, SPLIT_FRACTIONS, args.split_seed, args.calibration_fraction
    )
    splits, held_out = superclass_objects_train_only(splits, markers)
    # the post-hoc fits' split, found before training: stop now when it would have no windows
    post_hoc = calibration_split(splits) if args.kind == "classifier" else None
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        early_stopping_patience=args.patience,
        plateau_patience=args.plateau_patience,
        class_weighting=args.class_weighting,
        supcon_weight=args.supcon_weight,
        crop_probability=args.crop_probability,
        ignored_aux=tuple(args.ignore_aux),
        superclass_weight=args.superclass_weight,
        seed=args.seed,
        device=args.device,
        max_seconds=None if args.max_minutes is None else 60 * args.max_minutes,
        progress=not args.no_progress,
    )
    if args.lr is not None:
        config.lr = config.lr_aegmm = args.lr
    hp = {k: v for k, v in {"hidden": args.hidden, "depth": args.depth, "kernel": args.kernel}.items() if v}
    train, val, test = (splits[name].windows for name in ("train", "val", "test"))
    ensemble_options = (args.combine, args.ensemble_embedding)
    if args.kind == "classifier" and args.members_from:
        bundles = member_bundles(args.members_from, classes, period_config, window_config, splits)
        models, records = [b.model for b in bundles], [b.metadata for b in bundles]
        result = ensemble_result(models, records, classes, config, *ensemble_options)
        changes, arch = itcn.PAPER_CHANGES, result.arch
    elif args.kind == "classifier" and args.members > 1:
        result = train_ensemble(train, val, args.arch, classes, args.members, hp, config, *ensemble_options)
        changes, arch = itcn.PAPER_CHANGES, result.arch
    elif args.kind == "classifier":
        result = train_classifier(train, val, args.arch, classes, hp, config, markers)
        changes, arch = itcn.PAPER_CHANGES, args.arch
    else:
        hp = {k: v for k, v in hp.items() if k == "hidden"}
        result = train_aegmm(train, val, classes, hp, config)
        changes, arch = aegmm.PAPER_CHANGES, "aegmm"
    formats = "+".join(dict.fromkeys(a.fmt for a in archives))
    split_record = {"by": "object", "fractions": list(SPLIT_FRACTIONS), "seed": args.split_seed}
    if "calibration" in splits:
        split_record["calibration"] = {
            "carved_from": "train",
            "fraction_of_train": args.calibration_fraction,
            "used_for": "k-NN novelty head (k choice and percentile tables) and per-length temperatures",
        }
    metadata = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": {
            "source": " + ".join(args.data),
            "format": formats,
            "archives": [a.record() for a in archives],
            "classes_excluded": list(args.exclude),
            "min_class_count": args.min_class_count,
            "split": {**split_record, **split_ids(splits)},
            "splits": split_summary(splits),
            "window_cache": [a.record()["window_cache"] for a in archives],
        },
        "changes_from_paper": changes,
    }
    bundle = result.to_bundle(
        args.name or f"{formats}-{arch}",
        args.version,
        dataclasses.asdict(window_config),
        dataclasses.asdict(period_config),
        metadata,
    )
    if bundle.kind == "classifier":  # post-hoc fits on the calibration split (validation chose the epoch)
        name, part = post_hoc
        bank = splits["train"].only_classes(classes).windows  # class-labelled: no superclass markers
        bundle.novelty_head = fit_knn_head(bundle, bank, part.windows, None, args.seed, args.device, name)
        attach(bundle, fit_temperatures(bundle, part.windows, args.seed, args.device, name))
    if bundle.kind == "novelty":  # rank young objects' short windows among training windows of their length
        bundle.energy_quantiles_by_length = energy_quantiles_by_length(
            bundle.model, train, window_config.buckets, seed=args.seed
        )
    test_windows = test
    if bundle.kind == "novelty" or bundle.novelty_head is not None:  # unseen classes: novelty positives
        unseen = dataset.only_classes(args.exclude).windows
        test_windows = test.concatenate([test, unseen]) if len(unseen) else test
    evaluation = evaluate_bundles(
        test_windows, bundle, bundle if bundle.kind == "novelty" else None, device=args.device
    )
    bundle.metadata["test_metrics"] = evaluation.metrics
    if len(archives) > 1:  # each archive's test objects alone (classification only)
        bundle.metadata["test_metrics_by_archive"] = archive_test_metrics(
            bundle, archives, splits, args.device
        )
    if held_out is not None and len(held_out.windows):  # superclass-labelled test objects, one level up
        bundle.metadata["test_metrics_superclass_labels"] = superclass_test_metrics(
            bundle, held_out, args.device
        )
    save_bundle(bundle, args.out)
    export_onnx(bundle, args.out)  # what the plugin serves with ONNX Runtime
    _print_summary(bundle, evaluation.metrics, args.out)
    return 0


def _float_in(what: str, accept) -> Callable[[str], float]:
    """An argparse type: the number, refused (naming `what`) unless `accept(number)`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"{what}, got {text!r}")
        return value

    return parse


_positive = _float_in("a positive number", lambda value: value > 0)
_probability = _float_in("a probability in [0, 1]", lambda value: 0.0 <= value <= 1.0)


def _print_summary(bundle, metrics: dict, out: Path) -> None:
    line = (
        f"{bundle.kind} bundle {bundle.name} -> {out}: test objects {metrics['n_objects_classified']}, "
        f"accuracy {metrics['accuracy']:.3f}, balanced accuracy {metrics['balanced_accuracy']:.3f}"
    )
    novelty = metrics.get("novelty")
    if novelty:
        for level in ("p80", "p95"):
            m = novelty[level]
            line += f"; novelty {level} P {m['precision']:.3f} R {m['recall']:.3f} F1 {m['f1']:.3f}"
    print(line)
