"""Several labelled archives as one training set: classes named alike, ids unique, each archive split alone.

`varstream train` and `varstream fit-novelty-head` take --data more than once (CRTS plus the OGLE-IV LMC
Cepheids). Each archive's windows come from the window cache (`load_dataset`). Its labels are renamed to
the bundles' class names where another survey's label names the same class (CLASS_ALIASES: OGLE's type
"Cep" is the classical Cepheid, GCVS/VSX "DCEP", its F and overtone modes together). An archive whose ids
collide with an earlier one's gets a "<format>:" prefix on every id. Each archive is split by object on
its own (train/val/test stratified with the recorded fractions and seed, then the calibration split carved
out of train), so the CRTS objects of a CRTS+OGLE bundle are split exactly as a CRTS-only bundle's are.
An archive whose labels name superclasses only (EROS-1) can train too (`superclass_labelled`): its objects
stay in train (`superclass_objects_train_only`) and its test objects are scored one level up.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

from broker.errors import ConfigError

log = logging.getLogger(__name__)

# format -> {label or OGLE type token -> class name of the bundles}
CLASS_ALIASES: dict[str, dict[str, str]] = {"ogle": {"Cep": "DCEP"}}
# share of the training objects carved out (per class) for the novelty head and the temperatures:
# 1/7 of the 70% train split = 10% of all objects; val (early stopping) and test keep theirs
CALIBRATION_FRACTION = 1 / 7
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)  # train / val / test, by object


@dataclasses.dataclass
class TrainingArchive:
    """One --data archive's windows, relabelled to the bundle's class names and with unique ids."""

    spec: str
    fmt: str
    dataset: object  # models.window_dataset.WindowDataset
    class_map: dict[str, str]
    id_prefix: str = ""
    superclass_only: bool = False  # labels name superclasses only (`superclass_labelled`)

    def record(self) -> dict:
        """What the bundle metadata keeps of this archive ("data.archives")."""
        meta = self.dataset.meta
        return {
            "source": self.spec,
            "format": self.fmt,
            "class_map": self.class_map,
            "id_prefix": self.id_prefix,
            "superclass_only": self.superclass_only,
            "n_objects": len(self.dataset.objects),
            "window_cache": meta.get("cache_key") or meta.get("source_files"),
        }


def class_map_for(fmt: str, labels) -> dict[str, str]:
    """{archive label: bundle class name} for the labels of format `fmt` that CLASS_ALIASES renames.

    An OGLE label with a subtype ("Cep_F", "Cep_1O/2O") is renamed by its type token.
    """
    aliases = CLASS_ALIASES.get(fmt, {})
    mapping = {}
    for label in {str(x) for x in labels if x is not None}:
        name = aliases.get(label) or (aliases.get(label.split("_", 1)[0]) if fmt == "ogle" else None)
        if name is not None:
            mapping[label] = name
    return mapping


def load_archives(specs: Sequence[str], load, options: dict) -> list[TrainingArchive]:
    """Each FORMAT:PATH's windows through `load(spec, options)` (the command's `load_dataset`), with the
    reader options its format takes; ConfigError for an option none of the formats takes."""
    from broker.offline.archives.base import options_for, parse_spec

    formats = [parse_spec(spec)[0] for spec in specs]
    taken = {key for fmt in formats for key in options_for(fmt, options)}
    unused = sorted(set(options) - taken - {"on_error"})
    if unused:
        raise ConfigError(f"option(s) {unused} apply to none of the archive formats given ({list(specs)})")
    archives, seen = [], set()
    for spec, fmt in zip(specs, formats, strict=True):
        dataset = load(spec, options_for(fmt, options))
        mapping = class_map_for(fmt, dataset.objects["label"])
        dataset = dataset.relabelled(mapping)
        ids = set(map(str, dataset.objects["object_id"]))
        prefix = ""
        if ids & seen:
            prefix = f"{fmt}:"
            log.warning(
                "%s: %d object ids collide with earlier archives; prefixed %r", spec, len(ids & seen), prefix
            )
            dataset = dataset.with_id_prefix(prefix)
            ids = {prefix + i for i in ids}
            if ids & seen:
                raise ConfigError(
                    f"{spec}: object ids collide with earlier archives even with prefix {prefix!r}"
                )
        seen |= ids
        archives.append(TrainingArchive(spec, fmt, dataset, mapping, prefix))
    return archives


def split_datasets(
    datasets: Sequence, classes: Sequence[str], fractions, seed: int, calibration_fraction: float
) -> dict:
    """{"train", "val", "test"[, "calibration"]}: each dataset's objects of `classes` split alone, joined."""
    from models.window_dataset import WindowDataset

    parts = [d.only_classes(classes).split(fractions, seed, calibration_fraction) for d in datasets]
    return {name: WindowDataset.concatenate([p[name] for p in parts]) for name in parts[0]}


def recorded_splits(dataset, bundle, classes: Sequence[str] | None = None) -> dict:
    """The by-object train/val/test (and calibration, where recorded) split of the bundle's classes (or
    `classes`) in `dataset` (one WindowDataset, or a list of them split one by one as training split its
    archives), with the fractions and seed recorded in the bundle (today's defaults for bundles that lack
    them)."""
    recorded = bundle.metadata.get("data", {}).get("split", {})
    fractions = tuple(recorded.get("fractions", SPLIT_FRACTIONS))
    calibration = float((recorded.get("calibration") or {}).get("fraction_of_train", 0.0))
    datasets = dataset if isinstance(dataset, list) else [dataset]
    chosen = bundle.class_names if classes is None else classes
    return split_datasets(datasets, chosen, fractions, recorded.get("seed", 0), calibration)


def recorded_training_splits(archives: Sequence[TrainingArchive], bundle) -> dict:
    """The bundle's splits of its training `archives` (in training order) as `varstream train` made them:
    archives it trained on one level up (recorded `superclass_only`) labelled with superclass markers and
    split with them, their val and calibration objects moved into train."""
    recorded = bundle.metadata.get("data", {}).get("archives", [])
    if not any(a.get("superclass_only") for a in recorded):
        return recorded_splits([a.dataset for a in archives], bundle)
    if len(recorded) != len(archives):
        raise ConfigError(f"{bundle.name} trained on {len(recorded)} archives; got {len(archives)}")
    coarse = [a.spec for a, r in zip(archives, recorded, strict=True) if r.get("superclass_only")]
    archives = superclass_labelled(archives, coarse)
    markers = sorted({str(x) for a in archives if a.superclass_only for x in a.dataset.objects["label"]})
    splits = recorded_splits([a.dataset for a in archives], bundle, [*bundle.class_names, *markers])
    return superclass_objects_train_only(splits, markers)[0]


def calibration_split(splits: dict) -> tuple[str, object]:
    """(name, WindowDataset) of the split post-hoc fits use: "calibration" when there is one, else "val"
    (bundles trained before the calibration split, whose validation split also chose the epoch)."""
    name = "calibration" if "calibration" in splits else "val"
    if not len(splits[name].windows):
        raise ConfigError(f"the {name} split has no windows to fit the novelty head and temperatures on")
    return name, splits[name]


def split_ids(splits: dict) -> dict[str, list[str]]:
    """{"train_ids", "val_ids", "test_ids"[, "calibration_ids"]}: sorted archive ids of each split (objects
    with windows), so a user's data can be checked against what the bundle was trained and tuned on."""
    return {
        f"{name}_ids": sorted(map(str, part.objects.loc[part.objects["n_windows"] > 0, "object_id"]))
        for name, part in splits.items()
    }


def differing_ids(
    recorded: dict, ids: dict[str, list[str]], names: tuple[str, ...], unrecorded_match: bool
) -> list[str]:
    """Which of `names` ("train_ids", ...) a bundle's recorded split gives other ids for than `ids`
    (`split_ids` of a rebuilt split); a list the bundle did not record matches when `unrecorded_match`."""
    return [
        name for name in names
        if not (recorded.get(name) is None and unrecorded_match)
        and sorted(map(str, recorded.get(name) or [])) != ids[name]
    ]  # fmt: skip


def split_summary(splits: dict) -> dict:
    return {
        name: {"n_objects": int((part.objects["n_windows"] > 0).sum()), "n_windows": len(part.windows)}
        for name, part in splits.items()
    }


def bundle_labels(dataset, bundle, spec: str):
    """`dataset` (one archive, FORMAT:PATH `spec`) with its labels renamed as the bundle's training renamed
    that format's (metadata "data.archives"); unchanged for bundles trained without renaming."""
    from broker.offline.archives.base import parse_spec

    fmt, _ = parse_spec(spec)
    archives = bundle.metadata.get("data", {}).get("archives", [])
    if not any(a.get("format") == fmt and a.get("class_map") for a in archives):
        return dataset
    return dataset.relabelled(class_map_for(fmt, dataset.objects["label"]))


def superclass_labelled(archives: Sequence[TrainingArchive], chosen: Sequence[str]) -> list[TrainingArchive]:
    """`archives` with the labels of those `chosen` (by format, "eros", or by FORMAT:PATH spec) replaced by
    superclass markers (EROS-1 "rr_lyrae" -> "superclass:RR_Lyrae", `models.taxonomy.superclass_label`):
    they train the classifier through the hierarchical loss. ConfigError for a choice no archive matches,
    or a label the taxonomy does not know."""
    unmatched = sorted(set(chosen) - {a.fmt for a in archives} - {a.spec for a in archives})
    if unmatched:
        raise ConfigError(f"--superclass-labels {unmatched}: no --data archive has that format or spec")
    out = []
    for archive in archives:
        if archive.fmt not in chosen and archive.spec not in chosen:
            out.append(archive)
            continue
        dataset = with_superclass_markers(archive.dataset, archive.spec)
        out.append(dataclasses.replace(archive, dataset=dataset, superclass_only=True))
    return out


def with_superclass_markers(dataset, source: str):
    """`dataset` with every label replaced by its superclass marker (`models.taxonomy.superclass_label`);
    ConfigError, prefixed with `source`, naming the labels the taxonomy does not know."""
    from models.taxonomy import superclass_label, unmapped

    labels = {str(x) for x in dataset.objects["label"] if x is not None}
    unknown = unmapped(labels)
    if unknown:
        raise ConfigError(f"{source}: labels {unknown} have no superclass in models.taxonomy")
    return dataset.relabelled({x: superclass_label(x) for x in labels})


def superclass_objects_train_only(splits: dict, markers: Sequence[str]) -> tuple[dict, object]:
    """(splits, held_out): objects labelled with a superclass marker train, since validation and the
    calibration split score classes: those split into val or calibration join train; the test split's
    are held out (a WindowDataset, or None) and scored one level up by `superclass_test_metrics`."""
    from models.window_dataset import WindowDataset

    markers = set(markers)
    out, held_out, joining = dict(splits), None, []
    for name, part in splits.items():
        is_marker = part.objects["label"].isin(markers)
        if name == "train" or not is_marker.any():
            continue
        out[name] = part.subset_objects(part.objects.loc[~is_marker, "object_id"])
        marked = part.subset_objects(part.objects.loc[is_marker, "object_id"])
        if name == "test":
            held_out = marked
        else:
            joining.append(marked)
    if joining:
        out["train"] = WindowDataset.concatenate([splits["train"], *joining])
    return out, held_out


def trained_one_level_up(bundle, spec: str) -> bool:
    """Whether `bundle` trained on archives of `spec`'s format with their labels as superclasses only."""
    from broker.offline.archives.base import parse_spec

    fmt, path = parse_spec(spec)
    same = [a for a in bundle.metadata.get("data", {}).get("archives", []) if a.get("format") == fmt]
    if len({bool(a.get("superclass_only")) for a in same}) > 1:  # that format both ways: tell by path
        same = [a for a in same if Path(parse_spec(a["source"])[1]).resolve() == Path(path).resolve()]
    return any(a.get("superclass_only") for a in same)


def held_out_superclass_objects(dataset, bundle):
    """The objects of a superclass-labelled archive that `bundle`'s training held out (its test split;
    its val and calibration objects trained), labelled with their superclass markers. The split is rebuilt
    as training built it: the archive split alone, its markers as its classes, the recorded seed."""
    source = f"not the archive {bundle.name} trained on one level up (its held-out objects cannot be told)"
    marked = with_superclass_markers(dataset, source)
    markers = sorted(set(map(str, marked.objects["label"])))
    _, held_out = superclass_objects_train_only(recorded_splits(marked, bundle, markers), markers)
    return held_out


def superclass_test_metrics(bundle, held_out, device: str) -> dict:
    """Superclass metrics (`models.evaluate.superclass_metrics`) of the held-out marker-labelled objects."""
    from models.evaluate import aggregate_by_object, superclass_metrics

    windows = held_out.windows
    scores = aggregate_by_object(windows.object_ids, bundle.predict(windows, device).proba, windows.labels)
    section = superclass_metrics(scores.labels, scores.proba, list(bundle.class_names))
    return {"n_objects": len(scores.labels), **section}


def archive_test_metrics(bundle, archives, splits: dict, device: str) -> dict:
    """Classification metrics of each archive's test objects alone (archives with any)."""
    from models.evaluate import evaluate_bundles

    out = {}
    test_ids = set(map(str, splits["test"].objects["object_id"]))
    for archive in archives:
        ids = test_ids & set(map(str, archive.dataset.objects["object_id"]))
        part = splits["test"].subset_objects(ids)
        if len(part.windows):
            metrics = evaluate_bundles(part.windows, bundle, None, device=device).metrics
            keep = ("n_objects_classified", "accuracy", "balanced_accuracy", "per_class", "novelty_head")
            out[archive.spec] = {k: metrics[k] for k in keep if k in metrics}
    return out
