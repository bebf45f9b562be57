"""Training windows of the labelled sets: the plugin's own period search + folding, cached on disk.

Why here (in `broker`): the windows must come from exactly the code the plugin runs on alerts
(`broker.period.search_periods`, `broker.folding`), never from catalogue periods. The result type,
`models.window_dataset.WindowDataset`, lives in `models` so training code can load a cache without the broker.

Cache: ``<cache_dir>/<tag>-<key>.npz`` + ``.json`` (default ``<repo>/.cache/windows/``, git-ignored).
`build_windows` keys on a hash of the light curves themselves, both configs, max_points and
`CACHE_VERSION`; the `load_or_build_*` helpers key on the source files' names and sha256 instead, so
a cache hit skips reading the archive too. Bump `CACHE_VERSION` whenever period.py or folding.py change
what they compute.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from broker.errors import ArchiveError
from broker.folding import WindowConfig, make_windows
from broker.period import PeriodSearchConfig, search_periods
from models.data import DataError, read_crts, read_eros
from models.lightcurve import LabelledLightCurve
from models.window_dataset import WINDOW_TABLE_COLUMNS, WindowDataset
from models.windows import Windows

log = logging.getLogger(__name__)

CACHE_VERSION = 3  # 2: coarse passes nominate with the classical periodogram; 3: refit without sparse bands
DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[2] / ".cache" / "windows"
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
CRTS_ARCHIVE = SHARED_DATA / "crts_kvmu" / "raw-lc_17-05-2017_1615.tar.xz"
EROS_FOLDER = SHARED_DATA / "eros1_ramp"
SKIP_NO_WINDOW = "too_few_points_for_window"
CHUNK = 64  # light curves per search_periods call: one progress step, bounded memory

__all__ = ["WindowDataset", "build_windows", "cut_to_first", "load_or_build_crts", "load_or_build_eros"]


def cut_to_first(obj: LabelledLightCurve, max_points: int | None) -> LabelledLightCurve:
    """The object with only its first `max_points` points (time order), as if seen that early in a survey."""
    if max_points is None or len(obj.lightcurve) <= max_points:
        return obj
    return dataclasses.replace(obj, lightcurve=obj.lightcurve.select(slice(0, max_points)))


def build_windows(
    objects: Sequence[LabelledLightCurve],
    period_config: PeriodSearchConfig,
    window_config: WindowConfig,
    cache_dir: Path | None = DEFAULT_CACHE_DIR,
    progress: bool = True,
    max_points: int | None = None,
    tag: str = "windows",
) -> WindowDataset:
    """Search periods, fold and stack windows of `objects`; load from / save to `cache_dir` when given.

    max_points: cut every light curve to its first N points before the period search and the folding
    (accuracy as a function of points per object). Objects whose search is skipped, or that are too
    short for a window, stay in the table with n_windows = 0 and a skip_reason.
    """
    key = _content_key(objects, period_config, window_config, max_points) if cache_dir is not None else ""
    stem = None if cache_dir is None else Path(cache_dir) / f"{tag}-{key}"
    if stem is not None and stem.with_suffix(".json").is_file():
        log.info("window cache hit: %s", stem)
        return WindowDataset.load(stem)
    dataset = _build(objects, period_config, window_config, progress, max_points, tag)
    if stem is not None:
        dataset.meta["cache_key"] = key
        dataset.save(stem)
        log.info("window cache written: %s", stem)
    return dataset


def _build(objects, period_config, window_config, progress, max_points, tag) -> WindowDataset:
    from tqdm import tqdm

    objects = [cut_to_first(obj, max_points) for obj in objects]
    rows, parts = [], []
    search_seconds = fold_seconds = 0.0
    with tqdm(
        total=len(objects), desc=f"{tag}: period search + folding", unit="lc", disable=not progress
    ) as bar:
        for start in range(0, len(objects), CHUNK):
            chunk = objects[start : start + CHUNK]
            began = time.perf_counter()
            results = search_periods([obj.lightcurve for obj in chunk], period_config)
            search_seconds += time.perf_counter() - began
            began = time.perf_counter()
            for obj, result in zip(chunk, results, strict=True):
                windows = None
                if result.searched:
                    windows = make_windows(
                        obj.lightcurve, result.fold_period_days, obj.object_id, obj.label, window_config
                    )
                    parts.append(windows)
                rows.append(_row(obj, result, windows))
            fold_seconds += time.perf_counter() - began
            bar.update(len(chunk))
    windows = _stack(parts, window_config.length)
    table = pd.DataFrame(rows, columns=list(WINDOW_TABLE_COLUMNS))
    meta = {
        "tag": tag,
        "cache_version": CACHE_VERSION,
        "period_config": period_config.fingerprint(),
        "window_config": _window_fingerprint(window_config),
        "max_points": max_points,
        "n_objects": len(objects),
        "n_windows": len(windows),
        "period_search_seconds": search_seconds,
        "folding_seconds": fold_seconds,
        "period_search_ms_per_lightcurve": 1e3 * search_seconds / max(len(objects), 1),
    }
    return WindowDataset(windows, table, meta)


def _row(obj: LabelledLightCurve, result, windows: Windows | None) -> dict:
    n_windows = 0 if windows is None else len(windows)
    skip_reason = result.skip_reason or (SKIP_NO_WINDOW if n_windows == 0 else None)
    return {
        "object_id": obj.object_id,
        "label": obj.label,
        "n_points": len(obj.lightcurve),
        "n_windows": n_windows,
        "period_days": result.period_days,
        "fold_period_days": result.fold_period_days,
        "power": result.power,
        "false_alarm_probability": result.false_alarm_probability,
        "catalogue_period": np.nan if obj.period is None else float(obj.period),
        "skip_reason": skip_reason,
    }


def _stack(parts: list[Windows], length: int) -> Windows:
    parts = [p for p in parts if len(p)]
    if not parts:
        return Windows.empty(length)
    if any(p.labels is None for p in parts):  # unlabelled objects: keep labels, None where unknown
        for p in parts:
            if p.labels is None:
                p.labels = np.full(len(p), None, dtype=object)
    return Windows.concatenate(parts)


def _config_fingerprint(period_config, window_config, max_points) -> dict:
    return {
        "cache_version": CACHE_VERSION,
        "period_config": period_config.fingerprint(),
        "window_config": _window_fingerprint(window_config),
        "max_points": max_points,
    }


def _window_fingerprint(window_config) -> dict:
    """The window settings of a cache key; settings added later are left out at their default, so caches
    written before they existed stay valid (their windows are the default's)."""
    fields = dataclasses.asdict(window_config)
    if fields["short_window"] == "bucket":
        del fields["short_window"]
    return fields


def _content_key(objects, period_config, window_config, max_points) -> str:
    """sha256 over every object's id, label, catalogue period and photometry, plus the configs."""
    digest = hashlib.sha256(
        json.dumps(_config_fingerprint(period_config, window_config, max_points)).encode()
    )
    for obj in objects:
        lc = obj.lightcurve
        digest.update(f"{obj.object_id}\0{obj.label}\0{obj.period}\0{len(lc)}\0".encode())
        for array in (lc.mjd, lc.mag, lc.magerr):
            digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        digest.update("\0".join(map(str, lc.band)).encode())
    return digest.hexdigest()[:16]


def _source_key(files: Sequence[Path], period_config, window_config, max_points) -> str:
    """sha256 over the source files' names and contents, plus the configs. Contents, not mtimes: a copy
    of the same archive (a fresh checkout, a synced data folder) hits the cache; hashing the 24 MB CRTS
    archive takes ~0.03 s against ~45 s of period search."""
    fingerprint = _config_fingerprint(period_config, window_config, max_points)
    fingerprint["files"] = [(f.name, _file_sha256(f)) for f in sorted(files)]
    return hashlib.sha256(json.dumps(fingerprint).encode()).hexdigest()[:16]


def _file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _load_or_build(
    tag: str,
    files: Sequence[Path],
    reader: Callable[[], list[LabelledLightCurve]],
    period_config: PeriodSearchConfig | None,
    window_config: WindowConfig | None,
    max_points: int | None,
    cache_dir: Path,
    progress: bool,
) -> WindowDataset:
    period_config = period_config or PeriodSearchConfig()
    window_config = window_config or WindowConfig()
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise ArchiveError(f"{tag}: source files not found: {[str(f) for f in missing]}")
    suffix = "" if max_points is None else f"-first{max_points}"
    stem = Path(cache_dir) / f"{tag}{suffix}-{_source_key(files, period_config, window_config, max_points)}"
    if stem.with_suffix(".json").is_file():
        return WindowDataset.load(stem)
    try:
        objects = reader()
    except DataError as err:
        raise ArchiveError(str(err)) from err
    dataset = build_windows(objects, period_config, window_config, None, progress, max_points, tag)
    dataset.meta["source_files"] = [str(f) for f in files]
    dataset.save(stem)
    return dataset


def load_or_build_crts(
    max_points: int | None = None,
    period_config: PeriodSearchConfig | None = None,
    window_config: WindowConfig | None = None,
    archive: Path = CRTS_ARCHIVE,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    progress: bool = True,
) -> WindowDataset:
    """Windows of all 5,757 CRTS training objects (every class, RS_CVn included; filter with
    `models.data.select_classes` + `WindowDataset.only_classes`). Built once (~10 min on one core), then
    loaded from the cache in about a second."""
    periods_csv = archive.parent / "crts_train_labels_periods.csv"
    files = [archive, periods_csv] if periods_csv.is_file() else [archive]
    return _load_or_build(
        "crts",
        files,
        lambda: read_crts(archive),
        period_config,
        window_config,
        max_points,
        cache_dir,
        progress,
    )


def load_or_build_eros(
    max_points: int | None = None,
    period_config: PeriodSearchConfig | None = None,
    window_config: WindowConfig | None = None,
    folder: Path = EROS_FOLDER,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    progress: bool = True,
) -> WindowDataset:
    """Windows of all 2,912 EROS-1 training objects (bands B and R merged and centred)."""
    files = [folder / "train.csv", *sorted(folder.glob("*_varlength_features.csv.gz"))]
    return _load_or_build(
        "eros",
        files,
        lambda: read_eros(folder),
        period_config,
        window_config,
        max_points,
        cache_dir,
        progress,
    )
