"""CRTS and EROS archives read the real labelled sets in ../shared/data through models/data.py."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from broker.errors import ArchiveError
from broker.offline.archives.base import open_archive


def test_crts_from_the_kvmu_folder(shared_data):
    archive = open_archive(f"crts:{shared_data / 'crts_kvmu'}")
    objects = list(archive)
    assert len(objects) == 5757
    counts = Counter(o.label for o in objects)
    assert counts["EA"] == 996 and counts["RRab"] == 994 and counts["LADS"] == 3 and len(counts) == 16
    assert all(o.period is not None and o.period > 0 for o in objects)  # FATS PeriodLS from the table
    first = objects[0]
    assert first.object_id == "1001004003261" and first.label == "beta_lyrae"
    assert first.period == pytest.approx(0.287666451423863)
    assert first.extra["survey"] == "CRTS" and first.lightcurve.bands == ["V"]
    lengths = np.array([len(o.lightcurve) for o in objects])
    assert lengths.min() >= 50 and lengths.max() <= 546
    assert (
        archive.report.dropped["duplicate_row"] == sum(o.extra["n_duplicates_dropped"] for o in objects) > 0
    )


def test_eros_with_both_bands_and_an_offset_in_time(shared_data):
    objects = list(open_archive(f"eros:{shared_data / 'eros1_ramp'}", time_offset_days=48000.0))
    assert len(objects) == 2912
    assert Counter(o.label for o in objects) == {"rr_lyrae": 1777, "cepheid": 604, "binary": 339, "mira": 192}
    first = objects[0]
    assert first.object_id == "135_9613" and first.lightcurve.bands == ["B", "R"]
    assert first.period == pytest.approx(2.35495 / 7.0)
    assert first.lightcurve.mjd.min() == pytest.approx(48290.3)


def test_reader_errors_become_archive_errors(tmp_path):
    (tmp_path / "123-EW.csv").write_text('"ID","MJD","mag","magerr","RA","Dec"\n123,53000.1,15.0,oops,1,2\n')
    with pytest.raises(ArchiveError, match=r"123-EW.csv, line 2: need finite MJD, mag and magerr > 0"):
        list(open_archive(f"crts:{tmp_path}"))
    with pytest.raises(ArchiveError, match=r"need train\.csv"):
        list(open_archive(f"eros:{tmp_path}"))
