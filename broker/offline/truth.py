"""truth.csv: one schema for what a stream or a generated set really holds, written by replay and generate.

One row per object: the objectId its alerts and annotations carry, the archive id, class, catalogue
period (days), points, first/last MJD, and for generated light curves the parameters drawn (log10 period,
rms amplitude, mean magnitude, noise, peak-to-peak amplitude, cadence, RA/Dec; empty for archives).
`varstream evaluate-stream` and the demo read it back with `read_truth`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from pathlib import Path

from broker.errors import ConfigError
from models.lightcurve import LabelledLightCurve, LightCurve

TRUTH_COLUMNS = (
    "objectId", "archive_id", "class", "period", "n_points", "first_mjd", "last_mjd",
    "log10_period", "amplitude_rms", "mean_mag", "noise_mag", "peak_to_peak", "cadence", "ra", "dec",
)  # fmt: skip
GENERATED_FORMATS = {
    "log10_period": "{:.6f}",
    "amplitude_rms": "{:.5f}",
    "mean_mag": "{:.4f}",
    "noise_mag": "{:.5f}",
    "peak_to_peak": "{:.5f}",
    "cadence": "{}",
    "ra": "{:.6f}",
    "dec": "{:.6f}",
}
REQUIRED = ("objectId", "class", "period")


def truth_row(
    obj: LabelledLightCurve, object_id: str | None = None, lightcurve: LightCurve | None = None
) -> dict:
    """The row of `obj` as streamed under `object_id` (default: its archive id) with `lightcurve`
    (default: its own; replay passes the band-mapped, cut one)."""
    lc = lightcurve if lightcurve is not None else obj.lightcurve
    row = {
        "objectId": object_id if object_id is not None else obj.object_id,
        "archive_id": obj.object_id,
        "class": obj.label or "",
        "period": "" if obj.period is None else repr(float(obj.period)),
        "n_points": len(lc),
        "first_mjd": repr(float(lc.mjd[0])) if len(lc) else "",
        "last_mjd": repr(float(lc.mjd[-1])) if len(lc) else "",
    }
    for key, fmt in GENERATED_FORMATS.items():
        value = obj.extra.get(key)
        row[key] = "" if value is None else fmt.format(value)
    return row


def write_truth(path: str | Path, rows: Iterable[dict]) -> Path:
    """Write rows (from `truth_row`) with the TRUTH_COLUMNS header; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=TRUTH_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_truth(path: str | Path) -> dict[str, dict]:
    """objectId -> {"class": str | None, "period": float (nan when unknown), ...} of a truth.csv."""
    path = Path(path)
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = set(REQUIRED) - set(reader.fieldnames or [])
            if missing:
                raise ConfigError(f"{path}, line 1: truth file lacks columns {sorted(missing)}")
            truth = {}
            for number, row in enumerate(reader, start=2):
                object_id = row["objectId"].strip()
                if object_id in truth:
                    raise ConfigError(f"{path}, line {number}: objectId {object_id!r} appears twice")
                try:
                    period = float(row["period"]) if row["period"].strip() else math.nan
                except ValueError:
                    raise ConfigError(
                        f"{path}, line {number}: period {row['period']!r} is not a number"
                    ) from None
                truth[object_id] = {**row, "class": row["class"].strip() or None, "period": period}
    except OSError as exc:
        raise ConfigError(f"cannot read truth file {path}: {exc}") from exc
    return truth
