"""Training windows from the plugin's own period search, the per-object table and the on-disk cache."""

from __future__ import annotations

import os
import tarfile

import numpy as np
import pytest

from broker.folding import WindowConfig
from broker.offline.dataset import SKIP_NO_WINDOW, build_windows, cut_to_first, load_or_build_crts
from broker.period import SKIP_CONSTANT, PeriodSearchConfig
from models.lightcurve import LabelledLightCurve, LightCurve
from models.window_dataset import WindowDataset

PERIODS = PeriodSearchConfig(min_period_days=0.1, max_period_days=100.0)
WINDOWS = WindowConfig()


def star(object_id: str, label: str | None, period: float, n: int, seed: int) -> LabelledLightCurve:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0.0, 300.0, n))
    mag = 16.0 + 0.3 * np.sin(2 * np.pi * t / period) + rng.normal(0, 0.03, n)
    lc = LightCurve.from_arrays(t, mag, np.full(n, 0.03))
    return LabelledLightCurve(object_id, label, lc, period=period * 2.0)  # catalogue says 2P: must be ignored


def objects() -> list[LabelledLightCurve]:
    flat = LightCurve.from_arrays(np.linspace(0, 300, 80), np.full(80, 15.0), np.full(80, 0.05))
    return [
        star("a", "RRab", 0.55, 420, 1),
        star("b", "EW", 1.7, 130, 2),
        star("c", "EW", 3.1, 40, 3),
        LabelledLightCurve("d", "LPV", flat),
        star("e", "RRab", 0.61, 200, 4),
    ]


def test_windows_use_the_found_period_and_table_explains_every_object(tmp_path):
    dataset = build_windows(objects(), PERIODS, WINDOWS, tmp_path, progress=False)
    table = dataset.objects.set_index("object_id")
    assert list(table.index) == ["a", "b", "c", "d", "e"]
    assert list(table["n_windows"]) == [2, 1, 0, 0, 1]
    assert list(table["n_points"]) == [420, 130, 40, 80, 200]
    assert table.loc["c", "skip_reason"] == SKIP_NO_WINDOW and table.loc["d", "skip_reason"] == SKIP_CONSTANT
    assert table.loc["a", "period_days"] == pytest.approx(0.55, rel=0.01)
    assert table.loc["a", "catalogue_period"] == pytest.approx(1.1)
    assert np.isnan(table.loc["d", "period_days"])
    windows = dataset.windows
    assert list(windows.object_ids) == ["a", "a", "b", "e"] and list(windows.labels) == [
        "RRab",
        "RRab",
        "EW",
        "RRab",
    ]
    assert list(windows.lengths) == [200, 200, 100, 200]
    np.testing.assert_allclose(windows.aux[:2, 2], np.log10(table.loc["a", "period_days"]), rtol=1e-6)
    assert dataset.windows_per_class() == {"EW": 1, "RRab": 3}


def test_cache_round_trip_and_key(tmp_path):
    first = build_windows(objects(), PERIODS, WINDOWS, tmp_path, progress=False)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".npz")
    again = build_windows(objects(), PERIODS, WINDOWS, tmp_path, progress=False)
    np.testing.assert_array_equal(again.windows.x, first.windows.x)
    assert list(again.windows.labels) == list(first.windows.labels)
    assert again.objects["skip_reason"].tolist() == first.objects["skip_reason"].tolist()
    assert again.meta["cache_key"] == first.meta["cache_key"]
    build_windows(objects(), PERIODS, WindowConfig(min_remainder=100), tmp_path, progress=False)
    build_windows(objects()[:4], PERIODS, WINDOWS, tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.json"))) == 3  # other config, other objects: other keys
    build_windows(objects(), PERIODS, WindowConfig(short_window="all"), tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.json"))) == 4


def test_a_window_setting_at_its_default_leaves_older_cache_keys_as_they_were():
    """short_window came later: at "bucket" (the windows caches were built with) it is not in the key."""
    from broker.offline.dataset import _window_fingerprint

    assert _window_fingerprint(WindowConfig()) == {
        "length": 200, "min_length": 50, "buckets": (50, 100, 150, 200), "min_remainder": 50
    }  # fmt: skip
    assert _window_fingerprint(WindowConfig(short_window="all"))["short_window"] == "all"


def test_unlabelled_windows_survive_save_and_load(tmp_path):
    unlabelled = [LabelledLightCurve(o.object_id, None, o.lightcurve) for o in objects()[:2]]
    dataset = build_windows(unlabelled, PERIODS, WINDOWS, None, progress=False)
    dataset.save(tmp_path / "plain")
    loaded = WindowDataset.load(tmp_path / "plain")
    assert loaded.windows.labels is not None and list(loaded.windows.labels) == [None, None, None]
    assert loaded.objects["label"].isna().all()


def test_max_points_cuts_each_curve_to_its_first_points(tmp_path):
    dataset = build_windows(objects(), PERIODS, WINDOWS, None, progress=False, max_points=100)
    table = dataset.objects.set_index("object_id")
    assert list(table["n_points"]) == [100, 100, 40, 80, 100]
    assert set(dataset.windows.lengths) == {100}
    first = cut_to_first(objects()[0], 100)
    assert first.lightcurve.mjd[-1] == objects()[0].lightcurve.mjd[99]
    short = objects()[2]
    assert cut_to_first(short, 100) is short and cut_to_first(short, None) is short


def test_split_and_class_filter_keep_objects_whole():
    many = [star(f"s{i}", "RRab" if i % 2 else "EW", 0.5 + 0.1 * i, 260, i) for i in range(20)]
    dataset = build_windows(many, PERIODS, WINDOWS, None, progress=False)
    parts = dataset.split(fractions=(0.6, 0.2, 0.2), seed=1)
    ids = {name: set(part.windows.object_ids) for name, part in parts.items()}
    assert not (ids["train"] & ids["val"] or ids["train"] & ids["test"] or ids["val"] & ids["test"])
    assert sum(len(p.windows) for p in parts.values()) == len(dataset.windows)
    assert set(dataset.only_classes(["EW"]).windows.labels) == {"EW"}


def write_crts_archive(objs: list[LabelledLightCurve], archive, folder) -> None:
    """The objects as one CRTS CSV each (``<id>-<label>.csv``), packed into `archive` (tar.xz)."""
    folder.mkdir(exist_ok=True)
    header = '"ID","MJD","mag","magerr","RA","Dec"\n'
    with tarfile.open(archive, "w:xz") as tar:
        for obj in objs:
            lc = obj.lightcurve
            rows = "".join(
                f"{obj.object_id},{t},{m},{e},1,2\n"
                for t, m, e in zip(lc.mjd, lc.mag, lc.magerr, strict=True)
            )
            source = folder / f"{obj.object_id}-{obj.label}.csv"
            source.write_text(header + rows)
            tar.add(source, arcname=f"lcs/{source.name}")


def test_load_or_build_crts_from_an_archive_hits_its_cache(tmp_path, monkeypatch):
    archive = tmp_path / "lcs.tar.xz"
    write_crts_archive(objects()[:2], archive, tmp_path / "src")
    cache = tmp_path / "cache"
    built = load_or_build_crts(period_config=PERIODS, archive=archive, cache_dir=cache, progress=False)
    assert built.objects["object_id"].tolist() == ["a", "b"] and len(built.windows) == 3

    def must_not_read(path):
        raise AssertionError(f"cache hit read {path}")

    monkeypatch.setattr("broker.offline.dataset.read_crts", must_not_read)
    loaded = load_or_build_crts(period_config=PERIODS, archive=archive, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(loaded.windows.x, built.windows.x)
    assert len(list(cache.glob("crts-*.json"))) == 1
    # a copy of the same archive, with another mtime (a fresh copy of the data), hits the cache too:
    # read_crts still raises if called
    copy = tmp_path / "copy" / archive.name
    copy.parent.mkdir()
    copy.write_bytes(archive.read_bytes())
    os.utime(copy, ns=(1_000_000_000, 1_000_000_000))
    again = load_or_build_crts(period_config=PERIODS, archive=copy, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(again.windows.x, built.windows.x)


def test_an_archive_with_other_contents_misses_the_cache(tmp_path):
    archive = tmp_path / "lcs.tar.xz"
    cache = tmp_path / "cache"
    ids_read = []
    for obj in objects()[:2]:  # the same archive name holding one object, then another
        write_crts_archive([obj], archive, tmp_path / "src")
        dataset = load_or_build_crts(period_config=PERIODS, archive=archive, cache_dir=cache, progress=False)
        ids_read.append(dataset.objects["object_id"].tolist())
    assert ids_read == [["a"], ["b"]]
    assert len(list(cache.glob("crts-*.json"))) == 2
