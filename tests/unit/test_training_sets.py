"""Training on several archives (ids unique, OGLE Cepheids named DCEP, each archive split alone, the CRTS
test split unchanged) and the calibration split carved out of train (disjoint, stratified)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from broker.errors import ConfigError
from broker.offline.training_sets import (
    CALIBRATION_FRACTION,
    SPLIT_FRACTIONS,
    bundle_labels,
    class_map_for,
    load_archives,
    recorded_splits,
    split_datasets,
    split_ids,
)
from models.bundle import BUNDLES_DIR, METADATA_FILE
from models.data import carve_by_object, split_by_object
from models.window_dataset import WINDOW_TABLE_COLUMNS, WindowDataset
from models.windows import Windows

# sha256 of the 731 CRTS test ids of the first shipped bundle, one per line, sorted: every later bundle
# trained with the same fractions and seed must hold out the very same CRTS objects
FIRST_CRTS_TEST_IDS_SHA = "9710bbfe7d260498"


@dataclass(frozen=True)
class Item:
    object_id: str
    label: str


def items(sizes: dict[str, int], prefix: str = "") -> list[Item]:
    return [Item(f"{prefix}{label}{i}", label) for label, n in sizes.items() for i in range(n)]


def window_dataset(records: list[Item], length: int = 8) -> WindowDataset:
    """One window per object (content irrelevant to splitting), every object with windows."""
    n = len(records)
    windows = Windows(
        x=np.zeros((n, length, 3), np.float32),
        aux=np.zeros((n, 3), np.float32),
        lengths=np.full(n, length, np.int32),
        object_ids=np.array([r.object_id for r in records], object),
        labels=np.array([r.label for r in records], object),
    )
    table = pd.DataFrame(
        [{"object_id": r.object_id, "label": r.label, "n_windows": 1} for r in records],
        columns=list(WINDOW_TABLE_COLUMNS),
    )
    return WindowDataset(windows, table, {"cache_key": f"synthetic-{n}"})


def ids_of(part: WindowDataset) -> set[str]:
    return set(map(str, part.objects["object_id"]))


# ------------------------------------------------------------------------------------ calibration split


def test_calibration_split_is_carved_from_train_only_stratified_and_deterministic():
    records = items({"A": 200, "B": 60, "C": 9})
    plain = window_dataset(records).split(SPLIT_FRACTIONS, seed=0)
    carved = window_dataset(records).split(SPLIT_FRACTIONS, seed=0, calibration_fraction=1 / 7)
    assert set(carved) == {"train", "val", "test", "calibration"}
    # val and test keep their objects; train is split in two, nothing lost, nothing shared
    assert ids_of(carved["val"]) == ids_of(plain["val"]) and ids_of(carved["test"]) == ids_of(plain["test"])
    assert ids_of(carved["train"]) | ids_of(carved["calibration"]) == ids_of(plain["train"])
    names = list(carved)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not ids_of(carved[a]) & ids_of(carved[b]), (a, b)
    # stratified: each class gives round(n_train / 7) of its training objects
    train_counts = Counter(plain["train"].objects["label"])
    cal_counts = Counter(carved["calibration"].objects["label"])
    assert cal_counts == {c: round(n / 7) for c, n in train_counts.items()}
    assert cal_counts["A"] == 20 and len(carved["calibration"].windows) == sum(cal_counts.values())
    # 1/7 of a 70% train split is 10% of all objects
    assert len(ids_of(carved["calibration"])) / len(records) == pytest.approx(0.1, abs=0.01)
    # deterministic and independent of input order; another seed carves others
    again = window_dataset(records[::-1]).split(SPLIT_FRACTIONS, seed=0, calibration_fraction=1 / 7)
    assert ids_of(again["calibration"]) == ids_of(carved["calibration"])
    other = window_dataset(records).split(SPLIT_FRACTIONS, seed=1, calibration_fraction=1 / 7)
    assert ids_of(other["calibration"]) != ids_of(carved["calibration"])


def test_carving_one_class_is_unchanged_by_another_class():
    only_a = carve_by_object(items({"A": 50}), 0.2, seed=3)[1]
    with_b = carve_by_object(items({"A": 50, "B": 30}), 0.2, seed=3)[1]
    assert {i.object_id for i in with_b if i.label == "A"} == {i.object_id for i in only_a}
    with pytest.raises(ValueError, match="carved fraction"):
        carve_by_object(items({"A": 5}), 1.0)


# ---------------------------------------------------------------------------------------- several archives


def two_archives(tmp_path: Path, crts_records: list[Item], ogle_records: list[Item]):
    """load_archives over a crts and an ogle spec (real folders), with windows given per spec."""
    (tmp_path / "crts").mkdir(exist_ok=True)
    (tmp_path / "ogle").mkdir(exist_ok=True)
    specs = [f"crts:{tmp_path / 'crts'}", f"ogle:{tmp_path / 'ogle'}"]
    data = dict(zip(specs, [window_dataset(crts_records), window_dataset(ogle_records)], strict=True))
    given = {}

    def load(spec, options):
        given[spec] = options
        return data[spec]

    return load_archives(specs, load, {"bands": "I,V"}), given


def test_archives_get_bundle_class_names_unique_ids_and_their_own_split(tmp_path):
    crts = items({"RRab": 80, "EW": 40})
    modes = {"Cep_F": 30, "Cep_1O": 30, "Cep_1O/2O": 14}
    ogle = items(modes, prefix="RRab")  # ids RRab<mode>..., no collision yet
    ogle += [Item("RRab0", "Cep_F/1O")]  # collides with a CRTS id
    archives, given = two_archives(tmp_path, crts, ogle)
    assert given[archives[0].spec] == {} and given[archives[1].spec] == {"bands": "I,V"}  # per format
    crts_arch, ogle_arch = archives
    assert crts_arch.id_prefix == "" and ogle_arch.id_prefix == "ogle:"
    assert set(ogle_arch.dataset.objects["label"]) == {"DCEP"}  # F and overtone modes: one class
    assert set(ogle_arch.dataset.windows.labels) == {"DCEP"}
    assert ogle_arch.record()["class_map"] == {m: "DCEP" for m in [*modes, "Cep_F/1O"]}
    all_ids = [i for a in archives for i in a.dataset.objects["object_id"]]
    assert len(all_ids) == len(set(all_ids)) == len(crts) + len(ogle)

    datasets = [a.dataset for a in archives]
    splits = split_datasets(datasets, ["DCEP", "EW", "RRab"], SPLIT_FRACTIONS, 0, CALIBRATION_FRACTION)
    alone = window_dataset(crts).split(SPLIT_FRACTIONS, 0, CALIBRATION_FRACTION)
    for name, part in alone.items():  # the CRTS objects are split as if CRTS were alone
        crts_part = ids_of(splits[name]) & set(map(str, crts_arch.dataset.objects["object_id"]))
        assert crts_part == ids_of(part), name
    assert Counter(splits["test"].objects["label"])["DCEP"] == round(0.15 * len(ogle))


def test_labels_and_options_are_checked(tmp_path):
    assert class_map_for("ogle", ["Cep", "T2Cep_BLHer", "Cep_F", None]) == {"Cep": "DCEP", "Cep_F": "DCEP"}
    assert class_map_for("crts", ["Cep_II", "RRab"]) == {}  # CRTS's type II Cepheids stay what they are
    (tmp_path / "c").mkdir()
    with pytest.raises(ConfigError, match="label"):  # an OGLE option with no OGLE archive given
        load_archives([f"crts:{tmp_path / 'c'}"], lambda spec, options: None, {"label": "type"})


def test_evaluation_renames_only_for_bundles_trained_with_the_renaming(tmp_path):
    (tmp_path / "o").mkdir()
    spec = f"ogle:{tmp_path / 'o'}"
    data = window_dataset(items({"Cep_F": 3, "Cep_1O": 2}))

    class FakeBundle:
        def __init__(self, archives):
            self.metadata = {"data": {"archives": archives}}

    trained = FakeBundle([{"format": "ogle", "class_map": {"Cep": "DCEP"}}])
    assert set(bundle_labels(data, trained, spec).objects["label"]) == {"DCEP"}
    assert set(bundle_labels(data, FakeBundle([]), spec).objects["label"]) == {"Cep_F", "Cep_1O"}


def test_crts_test_split_is_the_first_bundles_when_another_archive_joins(shared_data):
    """Real CRTS ids and labels (the kit's label table) of the objects the shipped bundle split: adding
    the OGLE Cepheids as DCEP and carving the calibration split leaves the CRTS val and test objects
    exactly the first bundle's (its train objects become train + calibration)."""
    split = json.loads((BUNDLES_DIR / "crts-itcn" / METADATA_FILE).read_text())["metadata"]["data"]["split"]
    labels = pd.read_csv(shared_data / "crts_kvmu" / "crts_train_labels_periods.csv", dtype={"ID": str})
    label_of = dict(zip(labels["ID"], labels["class"], strict=True))
    crts_ids = [i for i in (*split["train_ids"], *split.get("calibration_ids", []), *split["val_ids"],
                            *split["test_ids"]) if i in label_of]  # fmt: skip
    crts = [Item(i, label_of[i]) for i in crts_ids]
    assert len(crts) == 3415 + 731 + 731
    ogle = [Item(f"OGLE-LMC-CEP-{i:04d}", "DCEP") for i in range(1400)]
    classes = sorted({*(r.label for r in crts), "DCEP"})
    splits = split_datasets(
        [window_dataset(crts), window_dataset(ogle)], classes, SPLIT_FRACTIONS, 0, CALIBRATION_FRACTION
    )
    crts_set = set(crts_ids)
    ids = {k: sorted(set(v) & crts_set) for k, v in split_ids(splits).items()}
    assert hashlib.sha256("\n".join(ids["test_ids"]).encode()).hexdigest()[:16] == FIRST_CRTS_TEST_IDS_SHA
    assert len(ids["test_ids"]) == len(ids["val_ids"]) == 731
    assert ids["val_ids"] == sorted(set(split["val_ids"]) & crts_set)
    first_train = set(split["train_ids"]) | set(split.get("calibration_ids", []))
    assert set(ids["train_ids"]) | set(ids["calibration_ids"]) == first_train & crts_set
    assert len(ids["train_ids"]) + len(ids["calibration_ids"]) == 3415
    assert len(ids["calibration_ids"]) == pytest.approx(0.1 * len(crts), abs=10)

    # the bundle's own recorded split is what recorded_splits rebuilds from the archive alone
    shipped = SimpleNamespace(
        metadata={"data": {"split": split}}, class_names=sorted({r.label for r in crts})
    )
    rebuilt = split_ids(recorded_splits(window_dataset(crts), shipped))
    assert rebuilt["test_ids"] == sorted(set(split["test_ids"]) & crts_set) == ids["test_ids"]
    assert rebuilt["val_ids"] == sorted(set(split["val_ids"]) & crts_set)
    assert rebuilt["train_ids"] == sorted(set(split["train_ids"]) & crts_set)


def test_split_by_object_is_the_one_every_archive_uses():
    records = items({"A": 30})
    assert {r.object_id for r in split_by_object(records)["test"]} == ids_of(
        window_dataset(records).split()["test"]
    )


def test_post_hoc_fits_use_the_calibration_split_and_older_bundles_their_validation_split():
    from broker.offline.training_sets import calibration_split

    records = items({"A": 40, "B": 40})
    with_calibration = window_dataset(records).split(SPLIT_FRACTIONS, 0, CALIBRATION_FRACTION)
    assert calibration_split(with_calibration)[0] == "calibration"
    assert calibration_split(window_dataset(records).split(SPLIT_FRACTIONS, 0))[0] == "val"  # shipped bundle
    empty = window_dataset(items({"A": 4})).split(SPLIT_FRACTIONS, 0, 0.01)  # rounds to no object
    with pytest.raises(ConfigError, match="calibration split has no windows"):
        calibration_split(empty)
