"""`WindowDataset`: the folded windows of a labelled set plus one row per input object, saved as .npz + .json.

It lives in `models` so training code can load the window caches that `broker.offline.dataset` builds
without importing `broker`; the by-object splits it applies are `models.data.split_by_object` and
`models.data.carve_by_object`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from models.data import CALIBRATION, DataError, carve_by_object, split_by_object
from models.jsonio import json_default
from models.windows import Windows

WINDOW_TABLE_COLUMNS = (
    "object_id",
    "label",
    "n_points",
    "n_windows",
    "period_days",
    "fold_period_days",
    "power",
    "false_alarm_probability",
    "catalogue_period",
    "skip_reason",
)


@dataclass
class WindowDataset:
    """Folded windows of a labelled set plus one row per input object.

    windows: every window (several per object). objects: DataFrame with WINDOW_TABLE_COLUMNS, one row per
    input object in input order — n_points actually used (after any max_points cut), the period the
    plugin's own search found (NaN when skipped) with its power and false-alarm probability, the
    catalogue period (comparison only, never folded with) and skip_reason (period-search reason, or
    "too_few_points_for_window"). meta: configs, cache key, timings.

    Saved as ``<stem>.npz`` (arrays, no pickle) + ``<stem>.json`` (table and meta) so `models` can load
    caches without importing `broker`.
    """

    windows: Windows
    objects: pd.DataFrame
    meta: dict = field(default_factory=dict)

    def subset_objects(self, object_ids: Iterable[str]) -> WindowDataset:
        """Windows and table rows of the given objects, in this dataset's order."""
        keep = set(map(str, object_ids))
        window_mask = np.fromiter((o in keep for o in self.windows.object_ids), bool, len(self.windows))
        table = self.objects[self.objects["object_id"].isin(keep)].reset_index(drop=True)
        return WindowDataset(self.windows.subset(window_mask), table, dict(self.meta))

    def only_classes(self, classes: Iterable[str]) -> WindowDataset:
        classes = set(classes)
        return self.subset_objects(self.objects.loc[self.objects["label"].isin(classes), "object_id"])

    def split(
        self,
        fractions: Sequence[float] = (0.7, 0.15, 0.15),
        seed: int = 0,
        calibration_fraction: float = 0.0,
    ) -> dict[str, WindowDataset]:
        """By-object stratified split (`split_by_object`) of the objects that have windows.

        calibration_fraction > 0 also carves that share of the training objects (per class) into a
        "calibration" split (`carve_by_object`); val and test are the same either way.
        """
        rows = self.objects[self.objects["n_windows"] > 0]
        records = [_Record(o, lab) for o, lab in zip(rows["object_id"], rows["label"], strict=True)]
        parts = split_by_object(records, fractions, seed)
        if calibration_fraction > 0:
            parts["train"], parts[CALIBRATION] = carve_by_object(parts["train"], calibration_fraction, seed)
        return {name: self.subset_objects(r.object_id for r in part) for name, part in parts.items()}

    def relabelled(self, mapping: dict[str, str]) -> WindowDataset:
        """The same windows with labels renamed by `mapping` (labels not in it unchanged)."""
        if not mapping:
            return self
        rename = np.vectorize(
            lambda label: mapping.get(label, label) if label is not None else None, otypes=[object]
        )
        windows = self.windows
        if windows.labels is not None and len(windows):
            windows = Windows(
                windows.x, windows.aux, windows.lengths, windows.object_ids, rename(windows.labels)
            )
        table = self.objects.copy()
        table["label"] = table["label"].map(lambda label: mapping.get(label, label))
        return WindowDataset(windows, table, dict(self.meta))

    def with_id_prefix(self, prefix: str) -> WindowDataset:
        """The same data with every object id prefixed (ids made unique across archives)."""
        if not prefix:
            return self
        w = self.windows
        ids = np.asarray([prefix + str(o) for o in w.object_ids], dtype=object)
        windows = Windows(w.x, w.aux, w.lengths, ids, w.labels)
        table = self.objects.copy()
        table["object_id"] = [prefix + str(o) for o in table["object_id"]]
        return WindowDataset(windows, table, dict(self.meta))

    @staticmethod
    def concatenate(parts: Sequence[WindowDataset]) -> WindowDataset:
        """One dataset of several (windows stacked, tables joined); meta of each under "parts"."""
        if not parts:
            raise DataError("no window datasets to concatenate")
        with_windows = [p.windows for p in parts if len(p.windows)]
        windows = Windows.concatenate(with_windows) if with_windows else parts[0].windows
        table = pd.concat([p.objects for p in parts], ignore_index=True)
        return WindowDataset(windows, table, {"parts": [p.meta for p in parts]})

    def windows_per_class(self) -> dict[str, int]:
        if self.windows.labels is None:
            return {}
        return dict(sorted(Counter(map(str, self.windows.labels)).items()))

    def save(self, stem: str | Path) -> None:
        """Write <stem>.npz and <stem>.json atomically (temp file + rename; the json last, as the marker)."""
        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        w = self.windows
        labels = w.labels if w.labels is not None else np.full(len(w), None, dtype=object)
        arrays = {
            "x": w.x,
            "aux": w.aux,
            "lengths": w.lengths,
            "object_ids": np.asarray([str(o) for o in w.object_ids], dtype=str),
            "labels": np.asarray(["" if lab is None else str(lab) for lab in labels], dtype=str),
            "has_label": np.asarray([lab is not None for lab in labels], dtype=bool),
        }
        tmp = stem.with_name(stem.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(stem.with_suffix(".npz"))
        table = self.objects.astype(object).where(self.objects.notna(), None)
        document = {
            "labelled": w.labels is not None,
            "window_length": w.window_length,
            "objects": table.to_dict(orient="list"),
            "meta": self.meta,
        }
        tmp = stem.with_name(stem.name + ".tmp.json")
        tmp.write_text(json.dumps(document, indent=1, default=json_default))
        tmp.replace(stem.with_suffix(".json"))

    @classmethod
    def load(cls, stem: str | Path) -> WindowDataset:
        stem = Path(stem)
        try:
            document = json.loads(stem.with_suffix(".json").read_text())
            with np.load(stem.with_suffix(".npz"), allow_pickle=False) as arrays:
                labels = np.where(arrays["has_label"], arrays["labels"].astype(object), None).astype(object)
                windows = Windows(
                    x=arrays["x"],
                    aux=arrays["aux"],
                    lengths=arrays["lengths"],
                    object_ids=arrays["object_ids"].astype(object),
                    labels=labels if document["labelled"] else None,
                )
        except (OSError, KeyError, ValueError) as err:
            raise DataError(f"cannot load window dataset {stem}.npz/.json: {err}") from err
        objects = pd.DataFrame(document["objects"], columns=list(WINDOW_TABLE_COLUMNS))
        for column in (
            "period_days",
            "fold_period_days",
            "power",
            "false_alarm_probability",
            "catalogue_period",
        ):
            objects[column] = objects[column].astype(float)
        # datasets written before fold_on existed folded on period_days
        objects["fold_period_days"] = objects["fold_period_days"].fillna(objects["period_days"])
        return cls(windows, objects, document["meta"])


@dataclass(frozen=True)
class _Record:
    object_id: str
    label: str | None
