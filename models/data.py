"""Readers of the real labelled sets in ../shared/data, and the by-object splits the networks train on.

CRTS (Drake et al. 2014, kvmu snapshot): one CSV per object, ``<CSS ID>-<CLASS>.csv`` with columns
``"ID","MJD","mag","magerr","RA","Dec"``, packed in a ``.tar.xz`` or laid out in a folder (the ``crts`` format
of ``varstream evaluate``). EROS-1 (RAMP kit): ``train.csv`` (one row per star, label and catalogue period)
plus ``*_varlength_features.csv.gz`` (bracketed lists of times, magnitudes and errors for bands b and r).

`WindowDataset` (windows + per-object table) is in `models.window_dataset`.

`models` must not import `broker`, so bad input raises `DataError` (a ValueError) naming file and line;
the broker wraps it in its own ArchiveError where it needs to.
"""

from __future__ import annotations

import io
import tarfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from models.lightcurve import LabelledLightCurve, LightCurve

CRTS_COLUMNS = ("ID", "MJD", "mag", "magerr", "RA", "Dec")
CRTS_PERIODS_CSV = "crts_train_labels_periods.csv"
CRTS_BAND = "V"

EROS_LABELS = {1: "binary", 2: "cepheid", 3: "rr_lyrae", 4: "mira"}
EROS_BANDS = {"b": "B", "r": "R"}

SPLIT_NAMES = ("train", "val", "test")
CALIBRATION = "calibration"  # the split carved out of train for post-hoc fits (`carve_by_object`)
_CALIBRATION_STREAM = 7  # keeps the carving's shuffle independent of the train/val/test one


class DataError(ValueError):
    """A labelled data file could not be read; the message names the file and, where known, the line."""


# ----------------------------------------------------------------------------------------------- CRTS


def read_crts(path: str | Path, periods_csv: str | Path | None = None) -> list[LabelledLightCurve]:
    """Read CRTS light curves from a ``.tar.xz`` archive (read in place) or a folder of ``<ID>-<CLASS>.csv``.

    The FATS Lomb-Scargle period from ``crts_train_labels_periods.csv`` is attached as ``period`` when that
    file is found (given, or beside/inside `path`); it is a catalogue value for comparison, never the period
    the plugin folds with. Exact duplicate rows (same MJD, mag and magerr — 712 of the 5,757 training files
    have some) are dropped; their count is kept in ``extra["n_duplicates_dropped"]``.
    Returns objects in file-name order.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"CRTS path {path} does not exist")
    blobs = sorted(_crts_blobs(path), key=lambda item: item[0])
    if not blobs:
        raise DataError(f"no <ID>-<CLASS>.csv light curves in {path}")
    tables = _parse_crts_tables(blobs)
    periods = _read_crts_periods(_find_crts_periods_csv(path, periods_csv))
    objects = []
    for (name, _), table in zip(blobs, tables, strict=True):
        object_id, label = _crts_id_and_label(name)
        objects.append(_crts_object(name, object_id, label, table, periods.get(object_id)))
    return objects


def _crts_blobs(path: Path) -> Iterator[tuple[str, bytes]]:
    """(file name, raw bytes) of every light-curve CSV, streamed from the archive without extracting it."""
    if path.is_dir():
        for file in path.glob("*.csv"):
            if file.name != CRTS_PERIODS_CSV:
                yield file.name, file.read_bytes()
        return
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                name = Path(member.name).name
                if member.isfile() and name.endswith(".csv") and not name.startswith("."):
                    yield name, archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataError(f"cannot read CRTS archive {path}: {err}") from err


def _crts_id_and_label(name: str) -> tuple[str, str]:
    stem = name.removesuffix(".csv")
    object_id, sep, label = stem.partition("-")
    if not sep or not object_id or not label:
        raise DataError(f"{name}: CRTS file name must be <ID>-<CLASS>.csv")
    return object_id, label


def _split_header(name: str, blob: bytes) -> bytes:
    """Check the header line and return the body, ending in exactly one newline."""
    header, _, body = blob.partition(b"\n")
    columns = tuple(c.strip().strip('"') for c in header.decode("utf-8", "replace").strip().split(","))
    if columns != CRTS_COLUMNS:
        raise DataError(f"{name}, line 1: expected header {','.join(CRTS_COLUMNS)}, got {header[:80]!r}")
    body = body.replace(b"\r\n", b"\n").rstrip(b"\n")
    if not body:
        raise DataError(f"{name}: no data rows")
    return body + b"\n"


def _parse_crts_tables(blobs: list[tuple[str, bytes]]) -> list[np.ndarray]:
    """Parse every body in one pandas call (0.5 s for 1.65 M rows, vs 12 s file by file).

    Returns one (n_i, 3) float64 array [MJD, mag, magerr] per file. If the joined parse finds anything
    odd, each file is re-parsed alone so the error can name the file and line.
    """
    bodies = [_split_header(name, blob) for name, blob in blobs]
    counts = np.array([body.count(b"\n") for body in bodies])
    try:
        frame = pd.read_csv(
            io.BytesIO(b"".join(bodies)),
            header=None,
            names=list(CRTS_COLUMNS),
            usecols=["MJD", "mag", "magerr"],
            dtype=np.float64,
            skip_blank_lines=False,
        )
        values = frame.to_numpy()
        clean = len(values) == counts.sum() and _rows_valid(values).all()
    except (ValueError, pd.errors.ParserError):
        clean = False
    if not clean:
        for (name, _), body in zip(blobs, bodies, strict=True):
            _parse_crts_file(name, body)
        raise DataError("CRTS files parsed one by one but not together: mixed line endings?")
    return np.split(values, np.cumsum(counts)[:-1])


def _rows_valid(values: np.ndarray) -> np.ndarray:
    return np.isfinite(values).all(axis=1) & (values[:, 2] > 0)


def _parse_crts_file(name: str, body: bytes) -> np.ndarray:
    """Parse one body; raise DataError naming the first bad line (header is line 1)."""
    frame = pd.read_csv(
        io.BytesIO(body), header=None, names=list(CRTS_COLUMNS), dtype=str, skip_blank_lines=False
    )
    numeric = frame[["MJD", "mag", "magerr"]].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = np.flatnonzero(~_rows_valid(numeric))
    if len(bad):
        row = frame.iloc[bad[0]]
        raise DataError(
            f"{name}, line {bad[0] + 2}: need finite MJD, mag and magerr > 0, got "
            f"MJD={row['MJD']!r} mag={row['mag']!r} magerr={row['magerr']!r}"
        )
    return numeric


def _crts_object(
    name: str, object_id: str, label: str, table: np.ndarray, period: float | None
) -> LabelledLightCurve:
    unique = np.unique(table, axis=0)  # sorts by MJD first, drops exact duplicate rows
    lightcurve = LightCurve.from_arrays(unique[:, 0], unique[:, 1], unique[:, 2], CRTS_BAND)
    extra = {"file": name, "n_duplicates_dropped": len(table) - len(unique)}
    return LabelledLightCurve(
        object_id=object_id, label=label, lightcurve=lightcurve, period=period, extra=extra
    )


def _find_crts_periods_csv(path: Path, given: str | Path | None) -> Path | None:
    if given is not None:
        return Path(given)
    folder = path if path.is_dir() else path.parent
    for candidate in (folder / CRTS_PERIODS_CSV, folder.parent / CRTS_PERIODS_CSV):
        if candidate.is_file():
            return candidate
    return None


def _read_crts_periods(csv: Path | None) -> dict[str, float]:
    """ID -> FATS PeriodLS [days]."""
    if csv is None:
        return {}
    try:
        frame = pd.read_csv(csv, dtype={"ID": str})
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {csv}: {err}") from err
    if not {"ID", "PeriodLS_FATS"} <= set(frame.columns):
        raise DataError(f"{csv}, line 1: need columns ID and PeriodLS_FATS, got {list(frame.columns)}")
    periods = pd.to_numeric(frame["PeriodLS_FATS"], errors="coerce")
    bad = np.flatnonzero(~(periods > 0))
    if len(bad):
        value = frame.iloc[bad[0]]["PeriodLS_FATS"]
        raise DataError(f"{csv}, line {bad[0] + 2}: PeriodLS_FATS must be > 0, got {value!r}")
    return dict(zip(frame["ID"].str.strip(), periods.astype(float), strict=True))


# ----------------------------------------------------------------------------------------------- EROS


def read_eros(path: str | Path) -> list[LabelledLightCurve]:
    """Read EROS-1 objects from a folder holding ``train.csv`` and ``*_varlength_features.csv.gz``.

    Bands b and r are merged into one LightCurve with band names "B" and "R". ``period`` is the catalogue
    period divided by ``div_period`` (the true period, per the RAMP starting kit). Returns objects in
    ``train.csv`` order.
    """
    path = Path(path)
    labels_csv = path / "train.csv"
    features = sorted(path.glob("*_varlength_features.csv.gz"))
    if not labels_csv.is_file() or len(features) != 1:
        raise DataError(
            f"{path}: need train.csv and exactly one *_varlength_features.csv.gz, found {features}"
        )
    try:
        table = pd.read_csv(labels_csv, index_col=0)
        curves = pd.read_csv(features[0], index_col=0, compression="gzip")
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read EROS files in {path}: {err}") from err
    missing = {"type", "period", "div_period"} - set(table.columns)
    if missing:
        raise DataError(f"{labels_csv}, line 1: missing columns {sorted(missing)}")
    objects = []
    for line, (object_id, row) in enumerate(table.iterrows(), start=2):
        if object_id not in curves.index:
            raise DataError(
                f"{labels_csv}, line {line}: object {object_id!r} has no light curve in {features[0].name}"
            )
        label = EROS_LABELS.get(int(row["type"])) if np.isfinite(row["type"]) else None
        if label is None:
            raise DataError(
                f"{labels_csv}, line {line}: type must be one of {sorted(EROS_LABELS)}, got {row['type']!r}"
            )
        period, div = float(row["period"]), float(row["div_period"])
        if not (period > 0 and div > 0):
            raise DataError(
                f"{labels_csv}, line {line}: need period > 0 and div_period > 0, got {period}, {div}"
            )
        lightcurve = _eros_lightcurve(features[0], curves.index.get_loc(object_id) + 2, curves.loc[object_id])
        extra = {"catalogue_period": period, "div_period": div, "quality": row.get("quality")}
        objects.append(
            LabelledLightCurve(
                object_id=str(object_id), label=label, lightcurve=lightcurve, period=period / div, extra=extra
            )
        )
    return objects


def _eros_lightcurve(file: Path, line: int, row: pd.Series) -> LightCurve:
    parts = []
    for suffix, band in EROS_BANDS.items():
        arrays = [
            _parse_list(file, line, row, f"{kind}_points_{suffix}") for kind in ("time", "light", "error")
        ]
        if len({len(a) for a in arrays}) != 1:
            raise DataError(
                f"{file}, line {line}: band {suffix} lists differ in length {[len(a) for a in arrays]}"
            )
        if not (np.isfinite(arrays).all() and (arrays[2] > 0).all()):
            raise DataError(f"{file}, line {line}: band {suffix} has non-finite values or error <= 0")
        parts.append((*arrays, np.full(len(arrays[0]), band, dtype=object)))
    mjd, mag, magerr, band = (np.concatenate(column) for column in zip(*parts, strict=True))
    return LightCurve.from_arrays(mjd, mag, magerr, band)


def _parse_list(file: Path, line: int, row: pd.Series, column: str) -> np.ndarray:
    """Parse one '[a, b, ...]' cell."""
    text = row.get(column)
    if not isinstance(text, str) or not text.startswith("[") or not text.endswith("]"):
        raise DataError(
            f"{file}, line {line}, column {column}: expected '[a, b, ...]', got {str(text)[:40]!r}"
        )
    inner = text[1:-1].strip()
    try:
        return np.array(inner.split(","), dtype=np.float64) if inner else np.zeros(0)
    except ValueError as err:
        raise DataError(f"{file}, line {line}, column {column}: {err}") from err


# ------------------------------------------------------------------------------------- splits, classes


def split_by_object(
    objects: Iterable, fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0
) -> dict[str, list]:
    """Split items (anything with ``object_id`` and ``label``) into train/val/test, stratified by class.

    All items of one object land in the same split (segment-level splits leak). Deterministic: the result
    depends only on the set of objects, `fractions` and `seed`, not on input order; each class is shuffled
    by its own generator so adding a class leaves the others' splits unchanged. Per class, val and test
    get round(n·f) objects and train the rest.
    """
    if len(fractions) != len(SPLIT_NAMES) or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise DataError(f"fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")
    groups, by_class = _group_by_object(objects)
    splits: dict[str, list] = {name: [] for name in SPLIT_NAMES}
    for label in sorted(by_class):
        ids = sorted(by_class[label])
        rng = np.random.default_rng([seed, zlib.crc32(label.encode())])
        ids = [ids[i] for i in rng.permutation(len(ids))]
        n_val, n_test = (round(len(ids) * f) for f in fractions[1:])
        n_train = len(ids) - n_val - n_test
        bounds = {
            "train": (0, n_train),
            "val": (n_train, n_train + n_val),
            "test": (n_train + n_val, len(ids)),
        }
        for name, (start, stop) in bounds.items():
            for object_id in ids[start:stop]:
                splits[name].extend(groups[object_id])
    return splits


def _group_by_object(objects: Iterable) -> tuple[dict[str, list], dict[str, list[str]]]:
    """({object id: its items}, {label: object ids}); an object carrying several labels is an error."""
    groups: dict[str, list] = defaultdict(list)
    for item in objects:
        groups[str(item.object_id)].append(item)
    by_class: dict[str, list[str]] = defaultdict(list)
    for object_id, items in groups.items():
        labels = {item.label for item in items}
        if len(labels) != 1:
            raise DataError(f"object {object_id!r} carries several labels {sorted(map(str, labels))}")
        by_class[str(labels.pop())].append(object_id)
    return groups, by_class


def carve_by_object(objects: Iterable, fraction: float, seed: int = 0) -> tuple[list, list]:
    """(kept, carved): per class, round(n·fraction) of the n objects of `objects` go to `carved`.

    Used to carve the calibration split out of the training split, by object and stratified like
    `split_by_object`, so validation and test keep their objects. Deterministic in the set of objects,
    `fraction` and `seed`; each class has its own generator (a class added elsewhere changes nothing).
    """
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"the carved fraction must be in [0, 1), got {fraction}")
    groups, by_class = _group_by_object(objects)
    kept, carved = [], []
    for label in sorted(by_class):
        ids = sorted(by_class[label])
        rng = np.random.default_rng([seed, zlib.crc32(label.encode()), _CALIBRATION_STREAM])
        order = [ids[i] for i in rng.permutation(len(ids))]
        n_carved = round(len(ids) * fraction)
        for rank, object_id in enumerate(order):
            (carved if rank < n_carved else kept).extend(groups[object_id])
    return kept, carved


def select_classes(objects: Iterable, min_count: int = 50, exclude: Sequence[str] = ("RS_CVn",)) -> list[str]:
    """Classes to train on, sorted: at least `min_count` distinct labelled objects and not in `exclude`.

    RS_CVn is excluded by default: it is the unseen class of the novelty benchmark.
    """
    seen: dict[str, str] = {}
    for item in objects:
        if item.label is not None:
            seen[str(item.object_id)] = str(item.label)
    counts = Counter(seen.values())
    return sorted(label for label, n in counts.items() if n >= min_count and label not in set(exclude))
