"""CRTS (Catalina Surveys periodic variables, Drake et al. 2014) through the reader in models/data.py.

`path` is the kvmu folder (holding ``raw-lc_*.tar.xz`` and ``crts_train_labels_periods.csv``), the
``.tar.xz`` itself, or a folder of ``<CSS ID>-<CLASS>.csv`` files. The catalogue period attached is the
FATS Lomb-Scargle period of that table (about half the orbital period for EW/EA/ELL), not Drake's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from broker.errors import ArchiveError
from broker.offline.archives.base import ReadReport
from models.data import DataError, read_crts
from models.lightcurve import LabelledLightCurve


class CrtsArchive:
    """CRTS light curves, read strictly (the reader stops at the first bad row, naming file and line)."""

    def __init__(self, path: str | Path, periods_csv: str | Path | None = None) -> None:
        self.path = Path(path)
        self.spec = f"crts:{path}"
        self.periods_csv = periods_csv
        self.report = ReadReport()

    def _source(self) -> Path:
        """The folder of CSVs or the tarball: a kvmu-style folder holds one packed training set."""
        if self.path.is_dir() and not any(self.path.glob("*-*.csv")):
            packed = sorted(self.path.glob("*.tar.xz"))
            if len(packed) != 1:
                raise ArchiveError(
                    f"{self.path}: expected <ID>-<CLASS>.csv files or one .tar.xz, found {packed}"
                )
            return packed[0]
        return self.path

    def __iter__(self) -> Iterator[LabelledLightCurve]:
        try:
            objects = read_crts(self._source(), self.periods_csv)
        except DataError as err:
            raise ArchiveError(str(err)) from err
        for obj in objects:
            self.report.dropped["duplicate_row"] += obj.extra.get("n_duplicates_dropped", 0)
            yield LabelledLightCurve(
                obj.object_id, obj.label, obj.lightcurve, obj.period, {"survey": "CRTS", **obj.extra}
            )
