"""Readers of the real labelled sets, and by-object stratified splits."""

from __future__ import annotations

import gzip
import io
import tarfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from models.data import DataError, read_crts, read_eros, select_classes, split_by_object

CRTS_HEADER = '"ID","MJD","mag","magerr","RA","Dec"\n'


@pytest.fixture(scope="module")
def crts_timed(shared_data: Path):
    start = time.perf_counter()
    objects = read_crts(shared_data / "crts_kvmu" / "raw-lc_17-05-2017_1615.tar.xz")
    return objects, time.perf_counter() - start


@pytest.fixture(scope="module")
def crts(crts_timed):
    return crts_timed[0]


@pytest.fixture(scope="module")
def eros(shared_data: Path):
    return read_eros(shared_data / "eros1_ramp")


def _crts_csv(object_id: str, rows: list[tuple[float, float, float]]) -> str:
    return CRTS_HEADER + "".join(f"{object_id},{t},{m},{e},10.0,20.0\n" for t, m, e in rows)


def test_crts_archive_has_every_training_object_with_label_and_fats_period(crts):
    assert len(crts) == 5757
    counts = Counter(o.label for o in crts)
    assert counts["EA"] == 996 and counts["RS_CVn"] == 757 and counts["LADS"] == 3
    assert all(o.period is not None and o.period > 0 for o in crts)
    sizes = np.array([len(o.lightcurve) for o in crts])
    assert sizes.min() >= 50 and np.median(sizes) > 250
    lc = crts[0].lightcurve
    assert np.all(np.diff(lc.mjd) >= 0) and np.all(lc.magerr > 0) and lc.bands == ["V"]


def test_crts_reads_the_archive_in_seconds(crts_timed):
    assert crts_timed[1] < 30.0  # 5 s here, dominated by xz; file-by-file pandas took 12 s


def test_crts_folder_layout_matches_archive_and_drops_exact_duplicates(tmp_path):
    rows = [(53000.5, 15.0, 0.05), (53000.1, 15.2, 0.06), (53000.1, 15.2, 0.06), (53001.0, 15.1, 0.05)]
    (tmp_path / "123-EW.csv").write_text(_crts_csv("123", rows))
    (tmp_path / "7-RS_CVn.csv").write_text(_crts_csv("7", rows[:2]))
    objects = read_crts(tmp_path)
    assert [(o.object_id, o.label) for o in objects] == [("123", "EW"), ("7", "RS_CVn")]
    ew = objects[0]
    assert list(ew.lightcurve.mjd) == [53000.1, 53000.5, 53001.0]
    assert ew.extra["n_duplicates_dropped"] == 1 and ew.period is None

    archive = tmp_path / "lcs.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        for file in sorted(tmp_path.glob("*.csv")):
            tar.add(file, arcname=f"lcs/{file.name}")
    from_archive = read_crts(archive)
    np.testing.assert_array_equal(from_archive[0].lightcurve.mag, ew.lightcurve.mag)


def test_crts_periods_csv_beside_the_folder_is_attached(tmp_path):
    folder = tmp_path / "lcs"
    folder.mkdir()
    (folder / "123-EW.csv").write_text(_crts_csv("123", [(1.0, 15.0, 0.1), (2.0, 15.1, 0.1)]))
    (tmp_path / "crts_train_labels_periods.csv").write_text(
        "filename,ID,class,PeriodLS_FATS,Period_fit_FATS\n123-EW.csv,123,EW,0.25,1e-9\n"
    )
    assert read_crts(folder)[0].period == 0.25


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("123,53000.2,abc,0.05,1,2", "line 3"),
        ("123,53000.2,15.0,0.0,1,2", "line 3"),
        ("123,,15.0,0.1,1,2", "line 3"),
    ],
)
def test_crts_bad_row_names_file_and_line(tmp_path, row, expected):
    good = _crts_csv("123", [(53000.1, 15.0, 0.05)])
    (tmp_path / "123-EW.csv").write_text(good + row + "\n")
    (tmp_path / "9-EA.csv").write_text(_crts_csv("9", [(1.0, 15.0, 0.1)]))
    with pytest.raises(DataError, match=rf"123-EW\.csv, {expected}"):
        read_crts(tmp_path)


def test_crts_bad_header_and_bad_name(tmp_path):
    (tmp_path / "123-EW.csv").write_text("MJD,mag\n1,2\n")
    with pytest.raises(DataError, match=r"123-EW\.csv, line 1"):
        read_crts(tmp_path)
    (tmp_path / "123-EW.csv").unlink()
    (tmp_path / "noclass.csv").write_text(_crts_csv("1", [(1.0, 15.0, 0.1)]))
    with pytest.raises(DataError, match=r"noclass\.csv"):
        read_crts(tmp_path)


def test_eros_merges_bands_and_divides_period(eros):
    assert len(eros) == 2912
    assert Counter(o.label for o in eros) == {"rr_lyrae": 1777, "cepheid": 604, "binary": 339, "mira": 192}
    first = eros[0]
    assert first.object_id == "135_9613" and first.label == "rr_lyrae"
    assert first.period == pytest.approx(2.35495 / 7)
    assert first.lightcurve.bands == ["B", "R"]
    assert np.all(np.diff(first.lightcurve.mjd) >= 0)
    assert 150 < len(first.lightcurve) <= 250


def test_eros_bad_list_cell_names_file_and_line(tmp_path, shared_data):
    import pandas as pd

    table = pd.read_csv(shared_data / "eros1_ramp" / "train.csv", index_col=0).iloc[:3]
    curves = pd.read_csv(
        shared_data / "eros1_ramp" / "train_varlength_features.csv.gz", index_col=0, compression="gzip"
    ).iloc[:3]
    curves.iloc[1, curves.columns.get_loc("light_points_r")] = "[1.0, nan-ish]"
    table.to_csv(tmp_path / "train.csv")
    buffer = io.StringIO()
    curves.to_csv(buffer)
    (tmp_path / "train_varlength_features.csv.gz").write_bytes(gzip.compress(buffer.getvalue().encode()))
    with pytest.raises(DataError, match=r"train_varlength_features\.csv\.gz, line 3, column light_points_r"):
        read_eros(tmp_path)


@dataclass(frozen=True)
class Item:
    object_id: str
    label: str


def _items() -> list[Item]:
    items = [Item(f"a{i}", "A") for i in range(100)] + [Item(f"b{i}", "B") for i in range(40)]
    return [*items, Item("a0", "A"), Item("a0", "A")]  # one object with three windows


def test_split_is_stratified_deterministic_and_keeps_objects_whole():
    items = _items()
    splits = split_by_object(items, seed=3)
    assert sum(len(v) for v in splits.values()) == len(items)
    ids = {name: {i.object_id for i in part} for name, part in splits.items()}
    assert (
        not (ids["train"] & ids["val"])
        and not (ids["train"] & ids["test"])
        and not (ids["val"] & ids["test"])
    )
    per_class = {name: Counter(i.label for i in part if i.object_id != "a0") for name, part in splits.items()}
    assert per_class["val"]["B"] == per_class["test"]["B"] == 6
    assert 14 <= per_class["val"]["A"] <= 15
    assert {i.object_id for i in split_by_object(list(reversed(items)), seed=3)["val"]} == ids["val"]
    assert {i.object_id for i in split_by_object(items, seed=4)["val"]} != ids["val"]


def test_split_of_one_class_is_unchanged_by_adding_another():
    only_a = [Item(f"a{i}", "A") for i in range(100)]
    with_c = only_a + [Item(f"c{i}", "C") for i in range(30)]
    val_a = {i.object_id for i in split_by_object(only_a)["val"]}
    assert {i.object_id for i in split_by_object(with_c)["val"] if i.label == "A"} == val_a


def test_split_rejects_bad_fractions_and_conflicting_labels():
    with pytest.raises(DataError, match="fractions"):
        split_by_object(_items(), fractions=(0.5, 0.5, 0.5))
    with pytest.raises(DataError, match="'x'"):
        split_by_object([Item("x", "A"), Item("x", "B")])


def test_select_classes_on_crts_drops_rare_and_rs_cvn(crts):
    kept = select_classes(crts)
    assert kept == ["Cep_II", "EA", "ELL", "EW", "HADS", "LPV", "RRab", "RRc", "RRd", "beta_lyrae"]
    assert "RS_CVn" in select_classes(crts, exclude=())
