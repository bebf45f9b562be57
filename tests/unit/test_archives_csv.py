"""Generic CSV reader (columns named by flags) and the FORMAT:PATH registry."""

from __future__ import annotations

import re
import tarfile

import numpy as np
import pytest

from broker.errors import ArchiveError, ConfigError
from broker.offline.archives.base import FORMATS, open_archive, options_for, to_mjd

CRTS_COLUMNS = {"time_col": "MJD", "mag_col": "mag", "err_col": "magerr", "id_col": "ID"}
MULTI = """\
star,t,m,e,filter,kind,P
a,2458000.5,15.1,0.02,g,RRab,0.55
b,2458001.5,16.2,0.03,r,EW,0.31
a,2458000.4,15.3,0.02,r,RRab,0.55
a,2458002.5,15.2,0.02,g,RRab,0.55
"""


def test_a_crts_file_read_as_generic_csv_matches_the_crts_reader(shared_data, tmp_path):
    name = "1001004003261-beta_lyrae.csv"
    with tarfile.open(shared_data / "crts_kvmu" / "raw-lc_17-05-2017_1615.tar.xz") as archive:
        member = next(m for m in archive if m.name.endswith(name))
        (tmp_path / name).write_bytes(archive.extractfile(member).read())
    (generic,) = list(open_archive(f"csv:{tmp_path / name}", **CRTS_COLUMNS))
    assert generic.object_id == "1001004003261" and generic.label is None
    table = np.loadtxt(tmp_path / name, delimiter=",", skiprows=1, usecols=(1, 2, 3))
    lc = generic.lightcurve
    assert len(lc) == len(table) and lc.bands == ["V"]
    np.testing.assert_array_equal(lc.mjd, np.sort(table[:, 0]))
    order = np.argsort(table[:, 0], kind="stable")
    np.testing.assert_array_equal(lc.mag, table[order, 1])


def test_many_objects_per_file_with_band_class_and_period_columns(tmp_path):
    (tmp_path / "multi.csv").write_text(MULTI)
    options = dict(time_col="t", mag_col="m", err_col="e", band_col="filter", id_col="star")
    objects = list(
        open_archive(f"csv:{tmp_path}", class_col="kind", period_col="P", time_format="jd", **options)
    )
    assert [(o.object_id, o.label, o.period, len(o.lightcurve)) for o in objects] == [
        ("a", "RRab", 0.55, 3),
        ("b", "EW", 0.31, 1),
    ]
    a = objects[0].lightcurve
    np.testing.assert_allclose(a.mjd, [57999.9, 58000.0, 58002.0])
    assert list(a.band) == ["r", "g", "g"] and list(a.mag) == [15.3, 15.1, 15.2]


def test_bad_rows_name_file_and_line(tmp_path):
    (tmp_path / "multi.csv").write_text(MULTI.replace("16.2", "n/a").replace("15.2,0.02", "15.2,-1"))
    options = dict(time_col="t", mag_col="m", err_col="e", id_col="star")
    with pytest.raises(ArchiveError, match=re.escape(f"{tmp_path / 'multi.csv'}, line 3: need numbers")):
        list(open_archive(f"csv:{tmp_path}", **options))
    archive = open_archive(f"csv:{tmp_path}", on_error="collect", **options)
    objects = list(archive)
    assert [(r.line, r.reason.split(",")[0]) for r in archive.report.bad_rows] == [
        (3, "need numbers in ['t'"),
        (5, "e must be > 0"),
    ]
    assert [o.object_id for o in objects] == ["a"]  # b had only its bad row


def test_missing_columns_and_flags_are_named(tmp_path):
    (tmp_path / "multi.csv").write_text(MULTI)
    with pytest.raises(ArchiveError, match=r"line 1: no column\(s\) \['MJD'\]"):
        list(open_archive(f"csv:{tmp_path}", time_col="MJD", mag_col="m", err_col="e"))
    with pytest.raises(ConfigError, match=r"needs the column names \['err_col'\]"):
        open_archive(f"csv:{tmp_path}", time_col="t", mag_col="m")


def test_the_registry_names_what_is_valid(tmp_path):
    assert sorted(FORMATS) == ["asassn", "crts", "csv", "eros", "ogle"]
    with pytest.raises(
        ConfigError, match=r"unknown archive format 'macho'.*\['asassn', 'crts', 'csv', 'eros', 'ogle'\]"
    ):
        open_archive(f"macho:{tmp_path}")
    with pytest.raises(ConfigError, match=r"must be FORMAT:PATH"):
        open_archive(str(tmp_path).lstrip("/").replace(":", ""))
    with pytest.raises(ConfigError, match=r"format 'eros' has no option\(s\) \['bands'\]; valid options"):
        open_archive(f"eros:{tmp_path}", bands="I")
    with pytest.raises(ArchiveError, match="does not exist"):
        open_archive(f"crts:{tmp_path / 'nowhere'}")
    assert options_for("ogle", {"bands": "I", "time_col": "t"}) == {"bands": "I"}


def test_time_stamps_are_told_apart_by_size():
    np.testing.assert_allclose(to_mjd(np.array([2452000.5, 55000.25, 2171.5])), [52000.0, 55000.25, 52171.0])
