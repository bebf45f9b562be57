"""Any survey exported as CSV: the columns that hold time, magnitude, error (and band, id, class) are named.

`path` is one CSV or a folder of them (searched recursively). With ``id_col`` one file may hold many
objects (rows grouped by id, in order of first appearance); without it each file is one object named by
its stem. Times are converted by ``time_format``: "mjd" (as is), "jd"/"hjd" (minus 2400000.5),
"hjd-2450000" (plus 49999.5) or "auto" (by size, see base.to_mjd).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from broker.errors import ArchiveError, ConfigError
from broker.offline.archives.base import (
    JD_TO_MJD,
    REDUCED_HJD_TO_MJD,
    ReadReport,
    RowErrors,
    parse_float,
    to_mjd,
)
from models.lightcurve import LabelledLightCurve, LightCurve

TIME_FORMATS = ("mjd", "jd", "hjd", "hjd-2450000", "auto")


class CsvArchive:
    """Light curves from CSV files whose column names are given (time_col, mag_col, err_col required)."""

    def __init__(
        self,
        path: str | Path,
        time_col: str | None = None,
        mag_col: str | None = None,
        err_col: str | None = None,
        band_col: str | None = None,
        id_col: str | None = None,
        class_col: str | None = None,
        period_col: str | None = None,
        band: str = "V",
        time_format: str = "mjd",
        delimiter: str = ",",
        on_error: str = "raise",
    ) -> None:
        required = {"time_col": time_col, "mag_col": mag_col, "err_col": err_col}
        missing = [name for name, col in required.items() if not col]
        if missing:
            raise ConfigError(
                f"csv archive needs the column names {missing} (--time-col, --mag-col, --err-col)"
            )
        if time_format not in TIME_FORMATS:
            raise ConfigError(f"time_format must be one of {TIME_FORMATS}, got {time_format!r}")
        self.path = Path(path)
        self.spec = f"csv:{path}"
        self.columns = {"time": time_col, "mag": mag_col, "err": err_col}
        self.optional = {"band": band_col, "id": id_col, "class": class_col, "period": period_col}
        self.band = band
        self.time_format = time_format
        self.delimiter = delimiter
        self.report = ReadReport()
        self.errors = RowErrors(self.report, on_error)

    def __iter__(self) -> Iterator[LabelledLightCurve]:
        files = sorted(self.path.rglob("*.csv")) if self.path.is_dir() else [self.path]
        if not files:
            raise ArchiveError(f"no .csv files under {self.path}")
        for file in files:
            yield from self._read_file(file)

    def _read_file(self, file: Path) -> Iterator[LabelledLightCurve]:
        groups: dict[str, dict] = {}
        try:
            with open(file, newline="") as handle:
                reader = csv.reader(handle, delimiter=self.delimiter)
                header = [h.strip() for h in next(reader, [])]
                index = self._column_index(file, header)
                for fields in reader:
                    number = reader.line_num
                    if not any(f.strip() for f in fields):
                        continue
                    self._add_row(file, number, fields, index, groups)
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise ArchiveError(f"cannot read {file}: {err}") from err
        for object_id, group in groups.items():
            if not group["rows"]:
                continue
            table = np.asarray(group["rows"], dtype=np.float64)
            mjd = self._to_mjd(table[:, 0])
            lightcurve = LightCurve.from_arrays(mjd, table[:, 1], table[:, 2], group["bands"])
            yield LabelledLightCurve(
                object_id=object_id,
                label=group["label"],
                lightcurve=lightcurve,
                period=group["period"],
                extra={"file": str(file)},
            )

    def _column_index(self, file: Path, header: list[str]) -> dict[str, int]:
        wanted = {**self.columns, **{k: v for k, v in self.optional.items() if v}}
        missing = sorted(col for col in wanted.values() if col not in header)
        if missing:
            raise ArchiveError(f"{file}, line 1: no column(s) {missing}; the header has {header[:20]}")
        return {key: header.index(col) for key, col in wanted.items()}

    def _add_row(
        self, file: Path, number: int, fields: list[str], index: dict[str, int], groups: dict
    ) -> None:
        needed = max(index.values()) + 1
        if len(fields) < needed:
            self.errors.bad(file, number, f"expected at least {needed} fields, got {len(fields)}")
            return
        object_id = fields[index["id"]].strip() if "id" in index else file.stem
        group = groups.setdefault(object_id, {"rows": [], "bands": [], "label": None, "period": None})
        values = [parse_float(fields[index[key]]) for key in ("time", "mag", "err")]
        if None in values:
            got = ", ".join(repr(fields[index[key]]) for key in ("time", "mag", "err"))
            self.errors.bad(file, number, f"need numbers in {list(self.columns.values())}, got {got}")
            return
        if values[2] <= 0:
            self.errors.bad(file, number, f"{self.columns['err']} must be > 0, got {fields[index['err']]!r}")
            return
        group["rows"].append(values)
        group["bands"].append(fields[index["band"]].strip() if "band" in index else self.band)
        if "class" in index and group["label"] is None:
            group["label"] = fields[index["class"]].strip() or None
        if "period" in index and group["period"] is None:
            period = parse_float(fields[index["period"]])
            group["period"] = period if period and period > 0 else None

    def _to_mjd(self, times: np.ndarray) -> np.ndarray:
        if self.time_format in ("jd", "hjd"):
            return times - JD_TO_MJD
        if self.time_format == "hjd-2450000":
            return times + REDUCED_HJD_TO_MJD
        if self.time_format == "auto":
            return to_mjd(times)
        return times
