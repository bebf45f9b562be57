"""Fit (or refit) the post-hoc parts of a classifier bundle in place: the k-NN novelty head and the
per-length probability temperatures (`models.calibration`), then refresh its ONNX export.

The head's bank is the bundle's own training split; its k, its percentile tables and the temperatures come
from its calibration split (carved out of train, never seen by early stopping), or from the validation
split for bundles trained before that split existed. The splits are rebuilt from DATA (every archive the
bundle was trained on, --data repeated, in training order) with the fractions and seed recorded in the
bundle, and must give the very train ids the bundle records (else the command stops). No network is
trained: the classifier embeds the windows once (seconds; building the windows of an archive not yet in
the window cache takes minutes). `varstream train --kind classifier` fits the head itself; this command is
for a bundle trained before, or one whose classifier was retrained in place. Needs the [train] extra.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from broker.errors import BundleError, ConfigError
from broker.offline.archives.options import add_reader_arguments
from broker.offline.commands.settings import configs_from
from broker.offline.commands.train import (
    add_common_arguments,
    load_archives_for,
    set_threads,
)
from broker.offline.training_sets import (
    calibration_split,
    differing_ids,
    recorded_training_splits,
    split_ids,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bundle",
        type=Path,
        help="classifier bundle folder (default: crts-itcn, whose head the plugin serves)",
    )
    parser.add_argument(
        "--data",
        required=True,
        action="append",
        help="FORMAT:PATH the bundle was trained on (crts:../shared/data/crts_kvmu); repeat it, in the "
        "training order, for a bundle trained on several archives",
    )
    parser.add_argument(
        "--k",
        type=int,
        help="neighbour rank of the score (default: chosen on the calibration split by novelty_fit.select_k)",
    )
    parser.add_argument(
        "--period-amplitude-weights",
        type=_weights,
        help="weights of the period–amplitude component to choose from on the calibration split (default "
        "0,0.1,0.2,0.3,0.5); 0, the embedding distance alone, is always tried, so 0 alone fits just that",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the calibration windows' cuts")
    parser.add_argument(
        "--temperatures-only",
        action="store_true",
        help="refit the temperatures alone; the bundle's head, or its lack of one, stays (a classifier "
        "served beside another bundle's head, as crts-itcn-supcon is)",
    )
    add_common_arguments(parser)
    add_reader_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from models.bundle import DEFAULT_NOVELTY_BUNDLE, BundleFormatError, load_bundle, save_bundle
    from models.calibration_fit import attach, fit_temperatures
    from models.novelty_fit import fit_knn_head
    from models.onnx_export import export_bundle_folder

    set_threads(args.threads)
    path = Path(args.bundle or DEFAULT_NOVELTY_BUNDLE)  # the shipped bundle whose head is served
    try:  # the head it may have is replaced, unless only the temperatures are
        bundle = load_bundle(path, with_novelty_head=args.temperatures_only)
    except BundleFormatError as err:
        raise BundleError(str(err)) from err
    if bundle.kind != "classifier":
        raise BundleError(f"{path} is a {bundle.kind!r} bundle; a novelty head belongs to a classifier")
    splits = _splits(args, bundle)
    name, part = calibration_split(splits)
    if not args.temperatures_only:
        weights = {"weight_grid": args.period_amplitude_weights} if args.period_amplitude_weights else {}
        bank = splits["train"].only_classes(bundle.class_names).windows  # as training: class-labelled
        head = fit_knn_head(bundle, bank, part.windows, args.k, args.seed, args.device, name, **weights)
        bundle.novelty_head = head
    temperature = fit_temperatures(bundle, part.windows, args.seed, args.device, name)
    attach(bundle, temperature)
    save_bundle(bundle, path)
    export_bundle_folder(path)
    scales = ", ".join(f"{length}: {t:.3f}" for length, t in temperature["by_length"].items())
    scales = scales or f"none (too few {name} windows: T = 1)"
    print(f"{path}: probability temperatures per window length ({name} NLL) {scales}")
    if not args.temperatures_only:
        _print_head(path, bundle.novelty_head, name)
    return 0


def _print_head(path: Path, head, name: str) -> None:
    print(
        f"{path}: novelty head {head.name} (k {head.k}: {head.info['k_selection']['method']}; "
        f"bank {len(head.bank)} training windows, calibrated "
        f"on {head.info['calibration']['n_windows']} {name} windows) in {head.info['fit_seconds']} s"
    )
    plane = head.plane
    print(
        f"{path}: period–amplitude component "
        + (f"weight {plane.weight} ({len(plane.density.bank)} training objects)" if plane else "not used")
    )


def _splits(args: argparse.Namespace, bundle) -> dict:
    """The bundle's train/val/test(/calibration) split of DATA's windows; stops when the train ids differ."""
    period_config, window_config = configs_from(bundle.period_search, bundle.window)
    archives = load_archives_for(args, period_config, window_config)
    recorded = bundle.metadata.get("data", {}).get("split", {})
    splits = recorded_training_splits(archives, bundle)
    if differing_ids(recorded, split_ids(splits), ("train_ids",), unrecorded_match=True):
        raise ConfigError(
            f"{args.data}: its split does not give the train ids recorded in {args.bundle or 'the bundle'} "
            "(other data, or other window settings): the head would be calibrated on training objects"
        )
    return splits


def _weights(text: str) -> tuple[float, ...]:
    try:
        weights = tuple(float(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated weights in [0, 1], got {text!r}") from None
    if not all(0.0 <= w <= 1.0 for w in weights):
        raise argparse.ArgumentTypeError(f"weights must lie in [0, 1], got {text!r}")
    return weights
