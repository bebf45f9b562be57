"""ASAS-SN Variable Stars Database: per-star light-curve CSVs plus the catalogue CSV (class and period).

Light-curve layouts, told apart by their header line:
  * V-band database export:  ``hjd,camera,mag,mag_err,flux,flux_err`` (all points V)
  * Sky Patrol v1 export:    ``HJD,UT Date,Camera,FWHM,Limit,mag,mag_err,flux(mJy),flux_err[,Filter]``
                              (V, or V/g per row when the Filter column is present; upper limits carry
                              ``mag`` = ">15.2" and ``mag_err`` = 99.99)
  * g-band Sky Patrol v2 (pyasassn ``LightCurve.save(..., "csv")``): a first line ``# {meta json}`` then
    ``[asas_sn_id,]jd,flux,flux_err,mag,mag_err,limit,fwhm,image_id,camera,quality[,phot_filter]``;
    mag_err > 99 marks a non-detection, quality "G" a good image; without phot_filter the band comes
    from the camera (V cameras ba-bh, g cameras bi-bt; Sky Patrol documentation).
Times are HJD/JD and become MJD. Non-detections and poor-quality images are dropped and counted in the
report (they are not detections, so a replay must not emit them).

Catalogue CSV (database download): ``asassn_name, Other Names, id, raj2000, dej2000, ..., period, Type,
class_probability, ...`` (newer exports name them ``variable_type``/``source_id``). A light-curve file is
matched to its row by file stem against asassn_name (spaces/underscores ignored), id, source_id, or the
asas_sn_id/name in a v2 meta line.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from broker.errors import ArchiveError
from broker.offline.archives.base import JD_TO_MJD, ReadReport, RowErrors, parse_float
from models.lightcurve import LabelledLightCurve, LightCurve

PHOT_DB_HEADER = ("hjd", "camera", "mag", "mag_err", "flux", "flux_err")
SKY_PATROL_HEADER = ("HJD", "UT Date", "Camera", "FWHM", "Limit", "mag", "mag_err", "flux(mJy)", "flux_err")
SKY_PATROL_V2_COLUMNS = ("jd", "flux", "flux_err", "mag", "mag_err", "limit", "fwhm", "image_id", "camera")
NON_DETECTION_ERR = 99.0  # mag_err at or above this marks an upper limit (99.99 in the files)
V_CAMERAS = tuple(f"b{c}" for c in "abcdefgh")

CATALOGUE_NAME_COLUMNS = ("asassn_name", "ASASSN_Name", "name")
CATALOGUE_KEY_COLUMNS = ("id", "source_id", "asas_sn_id", "aid")
CATALOGUE_CLASS_COLUMNS = ("Type", "variable_type", "type", "ML_classification")
CATALOGUE_PERIOD_COLUMNS = ("period", "Period")


def match_key(text: str) -> str:
    """Normalise an identifier for matching file stems to catalogue names ("ASASSN-V J0810..." ~ file)."""
    return re.sub(r"[\s_]+", "", str(text)).lower()


class AsassnArchive:
    """ASAS-SN light-curve CSVs under `path` (a folder, searched recursively) labelled from the catalogue.

    catalogue: the catalogue CSV; by default the one CSV under `path` whose header has a name and a class
    column. Light curves with no catalogue row are kept unlabelled and counted in report.notes.
    keep_poor_quality: keep v2 points whose image quality is not "G".
    """

    def __init__(
        self,
        path: str | Path,
        catalogue: str | Path | None = None,
        keep_poor_quality: bool = False,
        on_error: str = "raise",
    ) -> None:
        self.path = Path(path)
        self.spec = f"asassn:{path}"
        self.catalogue_path = Path(catalogue) if catalogue is not None else None
        self.keep_poor_quality = keep_poor_quality
        self.report = ReadReport()
        self.errors = RowErrors(self.report, on_error)

    def _files(self) -> tuple[Path | None, list[Path]]:
        files = sorted(self.path.rglob("*.csv")) if self.path.is_dir() else [self.path]
        catalogue = self.catalogue_path
        if catalogue is None:
            catalogues = [f for f in files if _is_catalogue(f)]
            if len(catalogues) > 1:
                raise ArchiveError(
                    f"several ASAS-SN catalogue CSVs under {self.path}: {catalogues}; pass catalogue="
                )
            catalogue = catalogues[0] if catalogues else None
        return catalogue, [f for f in files if f != catalogue]

    def __iter__(self) -> Iterator[LabelledLightCurve]:
        catalogue_file, lightcurve_files = self._files()
        if not lightcurve_files:
            raise ArchiveError(f"no ASAS-SN light-curve CSVs under {self.path}")
        catalogue = read_catalogue(catalogue_file) if catalogue_file else {}
        for file in lightcurve_files:
            meta, rows, bands = read_lightcurve(file, self.errors, self.report, self.keep_poor_quality)
            if len(rows) == 0:
                self.report.notes["without_detections"] += 1
                continue
            keys = [file.stem, *(str(meta.get(k)) for k in ("asas_sn_id", "name") if meta.get(k) is not None)]
            entry = next((catalogue[match_key(k)] for k in keys if match_key(k) in catalogue), None)
            if entry is None:
                self.report.notes["not_in_catalogue"] += 1
            lightcurve = LightCurve.from_arrays(rows[:, 0] - JD_TO_MJD, rows[:, 1], rows[:, 2], bands)
            yield LabelledLightCurve(
                object_id=entry["name"] if entry else str(meta.get("name") or file.stem),
                label=entry["class"] if entry else None,
                lightcurve=lightcurve,
                period=entry["period"] if entry else None,
                extra={"survey": "ASAS-SN", "file": str(file)},
            )


def _header(file: Path) -> list[str]:
    with open(file, newline="") as handle:
        for line in handle:
            if not line.startswith("#"):
                return next(csv.reader([line]))
    return []


def _is_catalogue(file: Path) -> bool:
    header = set(_header(file))
    return bool(header & set(CATALOGUE_NAME_COLUMNS)) and bool(header & set(CATALOGUE_CLASS_COLUMNS))


def _pick(header: list[str], candidates: tuple[str, ...]) -> str | None:
    return next((c for c in candidates if c in header), None)


def read_catalogue(file: Path) -> dict[str, dict]:
    """match_key(name or id) -> {"name", "class", "period"}; period None when missing or not positive."""
    with open(file, newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        name_col = _pick(header, CATALOGUE_NAME_COLUMNS)
        class_col = _pick(header, CATALOGUE_CLASS_COLUMNS)
        period_col = _pick(header, CATALOGUE_PERIOD_COLUMNS)
        if not name_col or not class_col:
            raise ArchiveError(
                f"{file}, line 1: ASAS-SN catalogue needs a name column {CATALOGUE_NAME_COLUMNS} and a class "
                f"column {CATALOGUE_CLASS_COLUMNS}, got {header[:12]}"
            )
        entries: dict[str, dict] = {}
        for number, row in enumerate(reader, start=2):
            name = (row.get(name_col) or "").strip()
            if not name:
                raise ArchiveError(f"{file}, line {number}: empty {name_col}")
            period = parse_float(row.get(period_col) or "") if period_col else None
            entry = {
                "name": name,
                "class": (row.get(class_col) or "").strip() or None,
                "period": period if period and period > 0 else None,
            }
            for key in [name, *(row.get(c) for c in CATALOGUE_KEY_COLUMNS if row.get(c))]:
                entries[match_key(key)] = entry
    return entries


def read_lightcurve(
    file: Path, errors: RowErrors, report: ReadReport, keep_poor_quality: bool = False
) -> tuple[dict, np.ndarray, np.ndarray]:
    """(meta, (n, 3) float64 [JD, mag, err], (n,) band names) of the detections in one light-curve CSV."""
    try:
        with open(file, newline="") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ArchiveError(f"cannot read ASAS-SN light curve {file}: {err}") from err
    meta: dict = {}
    header_index = 0
    while header_index < len(lines) and lines[header_index].startswith("#"):
        meta.update(_meta(lines[header_index]))
        header_index += 1
    if header_index == len(lines):
        raise ArchiveError(f"{file}: no header line")
    header = [h.strip() for h in next(csv.reader([lines[header_index]]))]
    parse_row = _row_parser(file, header_index + 1, header, keep_poor_quality)
    rows, bands = [], []
    for number, line in enumerate(lines[header_index + 1 :], start=header_index + 2):
        if not line.strip():
            continue
        outcome = parse_row([f.strip() for f in next(csv.reader([line]))])
        if isinstance(outcome, tuple):
            rows.append(outcome[:3])
            bands.append(outcome[3])
        elif outcome in ("upper_limit", "poor_quality"):
            report.dropped[outcome] += 1
        else:
            errors.bad(file, number, outcome)
    return meta, np.asarray(rows, dtype=np.float64).reshape(-1, 3), np.asarray(bands, dtype=object)


def _meta(line: str) -> dict:
    """The JSON object pyasassn writes behind '# ' on the first line; other comments give nothing."""
    try:
        meta = json.loads(line.lstrip("#").strip())
    except json.JSONDecodeError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _row_parser(file: Path, header_line: int, header: list[str], keep_poor_quality: bool):
    """A function fields -> (jd, mag, err, band) | "upper_limit" | "poor_quality" | error message."""
    if tuple(header) == PHOT_DB_HEADER:
        return _make_parser(header, "hjd", "mag", "mag_err", band_col=None, camera_col=None)
    if tuple(header[:9]) == SKY_PATROL_HEADER:
        band_col = "Filter" if len(header) > 9 and header[9] == "Filter" else None
        return _make_parser(header, "HJD", "mag", "mag_err", band_col=band_col, camera_col=None)
    if set(SKY_PATROL_V2_COLUMNS) <= set(header):
        band_col = "phot_filter" if "phot_filter" in header else None
        quality_col = None if keep_poor_quality or "quality" not in header else "quality"
        return _make_parser(header, "jd", "mag", "mag_err", band_col, "camera", quality_col)
    raise ArchiveError(
        f"{file}, line {header_line}: not an ASAS-SN light-curve header: {','.join(header)[:120]!r}; "
        "expected "
        f"{','.join(PHOT_DB_HEADER)!r}, {','.join(SKY_PATROL_HEADER)!r}[,Filter] or a Sky Patrol v2 header"
    )


def _make_parser(header, time_col, mag_col, err_col, band_col, camera_col, quality_col=None):
    index = {name: i for i, name in enumerate(header)}
    width = len(header)

    def parse(fields: list[str]):
        if len(fields) != width:
            return f"expected {width} comma-separated fields, got {len(fields)}"
        if quality_col and fields[index[quality_col]] != "G":
            return "poor_quality"
        mag_text, err_text = fields[index[mag_col]], fields[index[err_col]]
        err = parse_float(err_text)
        if mag_text.startswith(">") or (err is not None and err >= NON_DETECTION_ERR):
            return "upper_limit"
        time, mag = parse_float(fields[index[time_col]]), parse_float(mag_text)
        if time is None or mag is None or err is None:
            time_text = fields[index[time_col]]
            got = f"{time_text!r}, {mag_text!r}, {err_text!r}"
            return f"need numbers in {time_col}, {mag_col}, {err_col}, got {got}"
        if err <= 0:
            return f"{err_col} must be > 0, got {err_text!r}"
        if band_col:
            band = fields[index[band_col]]
        else:
            band = "g" if camera_col and fields[index[camera_col]][:2] not in V_CAMERAS else "V"
        return time, mag, err, band

    return parse
