"""Several labelled archives as one training set: classes named alike, ids unique, each archive split alone.

`varstream train` and `varstream fit-novelty-head` take --data more than once (CRTS plus the OGLE-IV LMC
Cepheids). Each archive's windows come from the window cache (`load_dataset`). Its labels are renamed to
the bundles' class names where another survey's label names the same class (CLASS_ALIASES: OGLE's type
"Cep" is the classical Cepheid, GCVS/VSX "DCEP", its F and overtone modes together). An archive whose ids
collide with an earlier one's gets a "<format>:" prefix on every id. Each archive is split by object on
its own (train/val/test stratified with the recorded fractions and seed, then the calibration split carved
out of train), so the CRTS objects of a CRTS+OGLE bundle are split exactly as a CRTS-only bundle's are.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from broker.errors import ConfigError

log = logging.getLogger(__name__)

# format -> {label or OGLE type token -> class name of the bundles}
CLASS_ALIASES: dict[str, dict[str, str]] = {"ogle": {"Cep": "DCEP"}}
# share of the training objects carved out (per class) for the novelty head and the temperatures:
# 1/7 of the 70% train split = 10% of all objects; val (early stopping) and test keep theirs
CALIBRATION_FRACTION = 1 / 7


@dataclasses.dataclass
class TrainingArchive:
    """One --data archive's windows, relabelled to the bundle's class names and with unique ids."""

    spec: str
    fmt: str
    dataset: object  # models.window_dataset.WindowDataset
    class_map: dict[str, str]
    id_prefix: str = ""

    def record(self) -> dict:
        """What the bundle metadata keeps of this archive ("data.archives")."""
        meta = self.dataset.meta
        return {
            "source": self.spec,
            "format": self.fmt,
            "class_map": self.class_map,
            "id_prefix": self.id_prefix,
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


def bundle_labels(dataset, bundle, spec: str):
    """`dataset` (one archive, FORMAT:PATH `spec`) with its labels renamed as the bundle's training renamed
    that format's (metadata "data.archives"); unchanged for bundles trained without renaming."""
    from broker.offline.archives.base import parse_spec

    fmt, _ = parse_spec(spec)
    archives = bundle.metadata.get("data", {}).get("archives", [])
    if not any(a.get("format") == fmt and a.get("class_map") for a in archives):
        return dataset
    return dataset.relabelled(class_map_for(fmt, dataset.objects["label"]))
