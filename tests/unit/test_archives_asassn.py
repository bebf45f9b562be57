"""ASAS-SN reader: the database's V-band CSV, Sky Patrol v1 (V/g Filter column) and v2 (g-band) layouts."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from broker.errors import ArchiveError
from broker.offline.archives.base import JD_TO_MJD, open_archive

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "archives" / "asassn"
RRAB = "ASASSN-V J000012.34+101112.3"  # V-band database CSV
EW = "ASASSN-V J010203.04-201011.5"  # Sky Patrol v1 with Filter column, one upper limit
DCEP = "ASASSN-V J020304.05+301213.6"  # Sky Patrol v2 g-band, file named by asas_sn_id
UNLISTED = "ASASSN-V_J030405.06-401314.7"  # a light curve with no catalogue row


@pytest.fixture(scope="module")
def objects_and_report():
    archive = open_archive(f"asassn:{FIXTURES}")
    return {obj.object_id: obj for obj in archive}, archive.report


def test_light_curves_are_matched_to_catalogue_rows(objects_and_report):
    objects, report = objects_and_report
    assert {k: (o.label, o.period) for k, o in objects.items()} == {
        RRAB: ("RRAB", pytest.approx(0.5712)),
        EW: ("EW", pytest.approx(0.3981)),
        DCEP: ("DCEP", pytest.approx(5.2341)),
        UNLISTED: (None, None),
    }
    assert report.notes["not_in_catalogue"] == 1


def test_v_band_database_csv(objects_and_report):
    objects, _ = objects_and_report
    table = np.genfromtxt(FIXTURES / f"{RRAB.replace(' ', '_')}.csv", delimiter=",", names=True)
    lc = objects[RRAB].lightcurve
    assert lc.bands == ["V"] and len(lc) == len(table)
    np.testing.assert_allclose(lc.mjd, table["hjd"] - JD_TO_MJD)
    np.testing.assert_allclose(lc.magerr, table["mag_err"])


def test_sky_patrol_filter_column_and_upper_limits(objects_and_report):
    objects, report = objects_and_report
    lines = (FIXTURES / f"{EW.replace(' ', '_')}.csv").read_text().splitlines()[1:]
    limits = [line for line in lines if ",>" in line]
    lc = objects[EW].lightcurve
    assert len(limits) == 1 and len(lc) == len(lines) - 1
    assert lc.bands == ["V", "g"]
    assert set(lc.band[lc.mjd > 2458500 - JD_TO_MJD]) == {"g"}
    assert report.dropped["upper_limit"] == 2  # one here, one in the v2 file


def test_sky_patrol_v2_meta_line_quality_and_non_detections(objects_and_report):
    objects, report = objects_and_report
    lc = objects[DCEP].lightcurve
    n_rows = len((FIXTURES / "661425123456.csv").read_text().splitlines()) - 2
    assert len(lc) == n_rows - 2  # one non-detection (mag_err 99.99), one quality "B" image
    assert report.dropped["poor_quality"] == 1
    assert lc.bands == ["g"] and lc.mjd.min() > 58500
    kept = list(open_archive(f"asassn:{FIXTURES}", keep_poor_quality=True))
    assert len(next(o for o in kept if o.object_id == DCEP).lightcurve) == n_rows - 1


def test_a_bad_row_raises_with_file_and_line(tmp_path):
    shutil.copytree(FIXTURES, tmp_path / "asassn")
    bad = tmp_path / "asassn" / f"{RRAB.replace(' ', '_')}.csv"
    lines = bad.read_text().splitlines()
    lines[4] = lines[4].replace(",bc,", ",bc,not-a-mag,", 1)
    lines[8] = "2457100.1,bc,13.1,0.0,10.0,0.1"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ArchiveError, match=re.escape(f"{bad}, line 5: expected 6 comma-separated fields, got 7")
    ):
        list(open_archive(f"asassn:{tmp_path / 'asassn'}"))
    archive = open_archive(f"asassn:{tmp_path / 'asassn'}", on_error="collect")
    objects = {o.object_id: o for o in archive}
    assert [(r.line, r.reason) for r in archive.report.bad_rows] == [
        (5, "expected 6 comma-separated fields, got 7"),
        (9, "mag_err must be > 0, got '0.0'"),
    ]
    assert len(objects[RRAB].lightcurve) == len(lines) - 1 - 2


def test_an_unknown_layout_is_named(tmp_path):
    (tmp_path / "x.csv").write_text("time,brightness\n1,2\n")
    with pytest.raises(
        ArchiveError, match=r"x.csv, line 1: not an ASAS-SN light-curve header: 'time,brightness'"
    ):
        list(open_archive(f"asassn:{tmp_path}"))
