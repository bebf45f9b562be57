"""What an archive is to the replay: an iterable of labelled light curves, opened by "FORMAT:PATH".

Every survey module exposes one class that takes the path plus keyword options and yields
`LabelledLightCurve`s (models/lightcurve.py) with times in MJD, total magnitudes and a band per point.
Rows a reader cannot use are never skipped silently: by default the reader raises `ArchiveError` naming
file and line; with ``on_error="collect"`` it skips the row and records it in ``archive.report``, which
the command prints and writes next to the run.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from broker.errors import ArchiveError, ConfigError
from models.lightcurve import LabelledLightCurve

# format name -> "module:Class"; the module is imported only when the format is opened.
FORMATS: dict[str, str] = {
    "ogle": "broker.offline.archives.ogle:OgleArchive",
    "asassn": "broker.offline.archives.asassn:AsassnArchive",
    "crts": "broker.offline.archives.crts:CrtsArchive",
    "eros": "broker.offline.archives.eros:ErosArchive",
    "csv": "broker.offline.archives.generic_csv:CsvArchive",
}

ON_ERROR = ("raise", "collect")

# JD - MJD; HJD is treated as JD (the heliocentric correction, < 8.3 min, is kept as given).
JD_TO_MJD = 2400000.5
# OGLE and ASAS quote "HJD - 2450000"; adding this gives MJD.
REDUCED_HJD_TO_MJD = 2450000.0 - JD_TO_MJD


@dataclass(frozen=True)
class BadRow:
    """One input row a reader could not use. line is 1-based, counting header lines."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}, line {self.line}: {self.reason}"


@dataclass
class ReadReport:
    """What a reader left out, and why: bad rows (file+line) and counted, expected drops (upper limits)."""

    bad_rows: list[BadRow] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)  # reason -> number of points left out on purpose
    notes: Counter = field(default_factory=Counter)  # e.g. "not_in_catalogue" -> number of objects

    def summary(self) -> str:
        parts = [f"{len(self.bad_rows)} unreadable rows"]
        parts += [f"{n} points dropped as {reason}" for reason, n in sorted(self.dropped.items())]
        parts += [f"{n} objects {note.replace('_', ' ')}" for note, n in sorted(self.notes.items())]
        return "; ".join(parts)


@runtime_checkable
class Archive(Protocol):
    """A survey archive opened for reading. Iterating yields each object once, in a stable order."""

    spec: str  # "FORMAT:PATH" as opened
    report: ReadReport

    def __iter__(self) -> Iterator[LabelledLightCurve]: ...


class RowErrors:
    """Route a bad row to an exception or into the report, per the reader's ``on_error`` setting."""

    def __init__(self, report: ReadReport, on_error: str) -> None:
        if on_error not in ON_ERROR:
            raise ConfigError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.report = report
        self.on_error = on_error

    def bad(self, file: str | Path, line: int, reason: str) -> None:
        row = BadRow(str(file), line, reason)
        if self.on_error == "raise":
            raise ArchiveError(str(row))
        self.report.bad_rows.append(row)


def _archive_class(fmt: str) -> type:
    if fmt not in FORMATS:
        raise ConfigError(f"unknown archive format {fmt!r}; valid formats: {sorted(FORMATS)}")
    module_name, class_name = FORMATS[fmt].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def format_options(fmt: str) -> list[str]:
    """The keyword options the reader of `fmt` takes (its class's parameters after `path`)."""
    return [p for p in inspect.signature(_archive_class(fmt)).parameters if p != "path"]


def options_for(fmt: str, options: dict) -> dict:
    """The subset of `options` that format `fmt` takes (for commands that open several formats)."""
    valid = set(format_options(fmt))
    return {key: value for key, value in options.items() if key in valid}


def parse_spec(spec: str) -> tuple[str, Path]:
    """ "FORMAT:PATH" -> (format, path): the one parser of archive specs. ConfigError for an unknown format,
    ArchiveError for a path that does not exist."""
    fmt, sep, path = spec.partition(":")
    if not sep or not path:
        raise ConfigError(f"archive must be FORMAT:PATH with FORMAT one of {sorted(FORMATS)}, got {spec!r}")
    _archive_class(fmt)  # ConfigError naming the valid formats
    if not Path(path).exists():
        raise ArchiveError(f"archive path {path} (from {spec!r}) does not exist")
    return fmt, Path(path)


def open_archive(spec: str, **options) -> Archive:
    """Open "FORMAT:PATH" (e.g. "ogle:/data/ogle3", "crts:../shared/data/crts_kvmu") with reader options.

    Options are the keyword arguments of the format's class; an unknown one raises ConfigError that lists
    the valid ones, as does an unknown format.
    """
    fmt, path = parse_spec(spec)
    valid = format_options(fmt)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"format {fmt!r} has no option(s) {unknown}; valid options: {valid}")
    archive = _archive_class(fmt)(path, **options)
    archive.spec = spec
    return archive


def to_mjd(times: np.ndarray) -> np.ndarray:
    """Survey time stamps -> MJD, by magnitude: JD/HJD (> 2.4e6), MJD (1e4..1e5) or HJD-2450000 (< 1e4).

    Archives mix conventions (OGLE: full HJD in the photometry, HJD-2450000 in catalogues; ASAS-SN: HJD;
    CRTS: MJD), and the ranges do not overlap for any data taken after 1968, so the size tells them apart.
    """
    times = np.asarray(times, dtype=np.float64)
    out = times.copy()
    full = times > 2.0e6
    reduced = times < 1.0e4
    out[full] -= JD_TO_MJD
    out[reduced] += REDUCED_HJD_TO_MJD
    return out


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def parse_float(text: str) -> float | None:
    """A float from a table cell, or None when the cell is not a plain finite number."""
    text = text.strip()
    if not _NUMBER.match(text):
        return None
    value = float(text)
    return value if np.isfinite(value) else None


def split_option(value: str | tuple | list | None) -> tuple[str, ...] | None:
    """Options given on the command line as "a,b" and from Python as sequences mean the same."""
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(value)
