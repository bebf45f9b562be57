"""EROS-1 LMC light curves (RAMP variable_stars kit) through the reader in models/data.py.

`path` is the folder holding ``train.csv`` and ``*_varlength_features.csv.gz``; bands b and r come as
"B" and "R" in one light curve, and the period is the catalogue period / div_period. The kit's times are
days from an origin it does not state (values ~0-1500); ``time_offset_days`` is added to them, e.g. to
place the 1990-1994 EROS-1 seasons at plausible MJDs in replayed alerts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from broker.errors import ArchiveError
from broker.offline.archives.base import ReadReport
from models.data import DataError, read_eros
from models.lightcurve import LabelledLightCurve, LightCurve


class ErosArchive:
    """EROS-1 light curves, read strictly (the reader stops at the first bad row, naming file and line)."""

    def __init__(self, path: str | Path, time_offset_days: float = 0.0) -> None:
        self.path = Path(path)
        self.time_offset_days = float(time_offset_days)
        self.spec = f"eros:{path}"
        self.report = ReadReport()

    def __iter__(self) -> Iterator[LabelledLightCurve]:
        try:
            objects = read_eros(self.path)
        except DataError as err:
            raise ArchiveError(str(err)) from err
        for obj in objects:
            lightcurve = obj.lightcurve
            if self.time_offset_days:
                lc = obj.lightcurve
                lightcurve = LightCurve(lc.mjd + self.time_offset_days, lc.mag, lc.magerr, lc.band)
            yield LabelledLightCurve(
                obj.object_id, obj.label, lightcurve, obj.period, {"survey": "EROS-1", **obj.extra}
            )
