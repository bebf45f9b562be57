"""OGLE-IV reader: the real LMC Cepheids in ../shared, and OCVS folders built here in every layout."""

from __future__ import annotations

import io
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from broker.errors import ArchiveError
from broker.offline.archives.base import REDUCED_HJD_TO_MJD, open_archive
from broker.offline.archives.ogle_ocvs import type_of

IDENT = """\
OGLE-LMC-CEP-0002        F  04:31:47.05 -69:49:09.5  LMC538.25.57     LMC157.6.2009
OGLE-LMC-CEP-0003       1O  04:35:05.70 -70:25:26.9  LMC538.06.389    LMC151.6.310
OGLE-LMC-CEP-0004    1O/2O  04:35:10.00 -70:25:26.9  LMC538.06.390    LMC151.6.311
"""
CEPF = "OGLE-LMC-CEP-0002  15.691 16.420   3.1181490 0.0000109  6000.34799  0.261  0.295 4.645  0.093 3.004\n"
CEPF_O3 = (
    "OGLE-LMC-CEP-0002  15.672 16.412   3.1181195 0.0000161  2171.23921  0.257  0.296 4.705  0.101 2.962\n"
)
CEP1O2O = (
    "OGLE-LMC-CEP-0004  15.1 15.6   0.9000000 0.0000010  6000.1  0.2  0.3 4.6  0.1 3.0"
    "   0.7200000 0.0000010  6000.2  0.1  0.3 4.6  0.1 3.0\n"
)


def photometry(n: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(5260.0, 7500.0, n))
    return "".join(f"{x:.5f} {15 + 0.1 * rng.standard_normal():.3f} 0.010\n" for x in t)


def write_collection(folder: Path, packed: str | None) -> Path:
    """An OCVS collection folder: ident.dat, tables and I/V photometry, unpacked or in a tarball."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ident.dat").write_text(IDENT)
    (folder / "cepF.dat").write_text(CEPF)
    (folder / "cepFO3.dat").write_text(CEPF_O3)
    (folder / "cep1O2O.dat").write_text(CEP1O2O)
    files = {
        f"phot/{band}/OGLE-LMC-CEP-{number}.dat": photometry(n, seed)
        for band, number, n, seed in [("I", "0002", 40, 1), ("V", "0002", 8, 2), ("I", "0003", 30, 3)]
    }
    files["phot/I/OGLE-LMC-CEP-0004.dat"] = photometry(25, 4)
    if packed is None:
        for name, text in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
        return folder
    with tarfile.open(folder / f"phot.{packed}", f"w:{packed.split('.')[-1]}") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return folder


@pytest.mark.parametrize("packed", [None, "tar.gz", "tar.xz"])
def test_an_ocvs_collection_reads_in_every_layout(tmp_path, packed):
    folder = write_collection(tmp_path / "cep", packed)
    archive = open_archive(f"ogle:{folder}", bands="I,V", label="type_subtype")
    objects = {o.object_id: o for o in archive}
    assert {k: o.label for k, o in objects.items()} == {
        "OGLE-LMC-CEP-0002": "Cep_F",
        "OGLE-LMC-CEP-0003": "Cep_1O",
        "OGLE-LMC-CEP-0004": "Cep_1O/2O",
    }
    cep2 = objects["OGLE-LMC-CEP-0002"]
    assert cep2.period == pytest.approx(3.1181490)  # the OGLE-IV table wins over the OGLE-III edition
    assert objects["OGLE-LMC-CEP-0004"].period == pytest.approx(0.9)  # multi-mode: the longest period
    assert objects["OGLE-LMC-CEP-0003"].period is None
    assert archive.report.notes["without_catalogue_period"] == 1
    assert cep2.lightcurve.bands == ["I", "V"] and len(cep2.lightcurve) == 48
    assert cep2.extra["survey"] == "OGLE-IV" and cep2.extra["subtype"] == "F"
    assert cep2.lightcurve.mjd.min() > 5260 + REDUCED_HJD_TO_MJD - 1e-6  # HJD-2450000 -> MJD


def test_the_type_comes_from_the_star_id():
    assert type_of("OGLE-LMC-CEP-0002") == "Cep"
    assert type_of("OGLE-BLG-RRLYR-00001") == "RRLyr"
    assert type_of("OGLE-SMC-T2CEP-001") == "T2Cep"
    assert type_of("OGLE-GD-XYZ-1") == "XYZ"


def test_bad_catalogue_rows_are_named_or_collected(tmp_path):
    folder = write_collection(tmp_path / "cep", None)
    (folder / "cepF.dat").write_text(CEPF + "OGLE-LMC-CEP-0099  15.0 16.0   -  -  -\n")
    with pytest.raises(ArchiveError, match=r"cepF.dat, line 2: 4th column must be the period"):
        list(open_archive(f"ogle:{folder}"))
    archive = open_archive(f"ogle:{folder}", on_error="collect")
    assert len(list(archive)) == 3 and len(archive.report.bad_rows) == 1


def test_a_folder_without_photometry_says_what_it_expected(tmp_path):
    (tmp_path / "ident.dat").write_text(IDENT)
    with pytest.raises(ArchiveError, match=r"no OGLE photometry .* tarball"):
        list(open_archive(f"ogle:{tmp_path}"))


def test_the_real_lmc_cepheids_read_with_modes_and_periods(shared_data):
    folder = shared_data / "ogle_lmc_cepheids"
    archive = open_archive(f"ogle:{folder}", bands="I,V", label="type_subtype")
    objects = list(archive)
    assert len(objects) == 1500 and not archive.report.bad_rows  # the README's counts
    modes = Counter(o.label for o in objects)
    assert modes == {"Cep_F": 582, "Cep_1O": 581, "Cep_1O/2O": 282, "Cep_F/1O": 55}
    f_mode = [o for o in objects if o.label == "Cep_F"]
    assert all(o.period is not None for o in f_mode)
    table = {line.split()[0]: float(line.split()[3]) for line in (folder / "cepFO4.dat").open()}
    assert all(o.period == table[o.object_id] for o in f_mode)  # the OGLE-IV periods
    times = np.concatenate([o.lightcurve.mjd for o in objects])
    assert times.min() > 55260 and times.max() < 57517  # HJD-2450000 5260-7517: 2010-2016
    with_v = sum("V" in o.lightcurve.bands for o in objects)
    assert with_v == 1402
