"""The plugin's own period search on an archive, for astronomers: a table, a summary and a few plots.

`search_archive` runs `broker.period.search_periods` on each light curve with a classifier bundle's period
settings, exactly as the plugin does before folding; `summarise` compares the found periods with the
catalogue's (within 1%, and also accepting the x2 and x1/2 aliases); `plot_object` draws an object's
periodogram and its light curve folded at the found period (and at the catalogue period when there is one).
"""

from __future__ import annotations

import csv
import math
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from broker.period import PeriodSearchConfig, centre_bands, search_periods
from models.evaluate import period_recovery
from models.lightcurve import LabelledLightCurve

CHUNK = 64  # light curves per search_periods call: one progress step, bounded memory
TOLERANCE = 0.01
PERIODS_COLUMNS = (
    "objectId",
    "class",
    "n_points",
    "bands",
    "period_days",
    "power",
    "false_alarm_probability",
    "catalogue_period_days",
    "ratio_to_catalogue",
    "match",
    "skip_reason",
)
PLOT_FREQUENCIES = 200_000  # periodogram points drawn (the search itself uses the full grid)


def search_archive(
    objects: Sequence[LabelledLightCurve], config: PeriodSearchConfig, progress: bool = True
) -> tuple[list[dict], list, float]:
    """(one row per object in PERIODS_COLUMNS, the PeriodResults, seconds spent searching)."""
    from tqdm import tqdm

    rows, results, seconds = [], [], 0.0
    with tqdm(total=len(objects), desc="period search", unit="lc", disable=not progress) as bar:
        for start in range(0, len(objects), CHUNK):
            chunk = objects[start : start + CHUNK]
            began = time.perf_counter()
            found = search_periods([obj.lightcurve for obj in chunk], config)
            seconds += time.perf_counter() - began
            for obj, result in zip(chunk, found, strict=True):
                rows.append(_row(obj, result))
                results.append(result)
            bar.update(len(chunk))
    return rows, results, seconds


def match_kind(found: float, catalogue: float | None, tolerance: float = TOLERANCE) -> str:
    """ "exact", "double" (found = 2x catalogue), "half", "other", or "" when either is unknown."""
    if catalogue is None or not math.isfinite(found) or not catalogue > 0:
        return ""
    ratio = found / catalogue
    for name, factor in (("exact", 1.0), ("double", 2.0), ("half", 0.5)):
        if abs(ratio / factor - 1) <= tolerance:
            return name
    return "other"


def _row(obj: LabelledLightCurve, result) -> dict:
    lc = obj.lightcurve
    found = float(result.period_days)
    catalogue = obj.period
    return {
        "objectId": obj.object_id,
        "class": obj.label or "",
        "n_points": len(lc),
        "bands": "".join(lc.bands) if all(len(b) == 1 for b in lc.bands) else ",".join(lc.bands),
        "period_days": found,
        "power": float(result.power),
        "false_alarm_probability": float(result.false_alarm_probability),
        "catalogue_period_days": "" if catalogue is None else float(catalogue),
        "ratio_to_catalogue": found / catalogue if catalogue and math.isfinite(found) else "",
        "match": match_kind(found, catalogue),
        "skip_reason": result.skip_reason or "",
    }


def summarise(rows: list[dict]) -> dict:
    """n, searched, skipped by reason and, over objects with a catalogue period, the recovery shares
    (overall and per class): within_1pct, within_1pct_or_alias (x2, x1/2), double, half."""
    summary: dict = {
        "n": len(rows),
        "n_searched": sum(1 for r in rows if not r["skip_reason"]),
        "skipped": dict(Counter(r["skip_reason"] for r in rows if r["skip_reason"])),
    }
    with_catalogue = [r for r in rows if r["catalogue_period_days"] != ""]
    if not with_catalogue:
        return summary
    recovery = _recovery(with_catalogue)
    summary["n_with_catalogue_period"] = recovery.pop("n")
    summary.update(recovery)
    classes = sorted({r["class"] for r in with_catalogue if r["class"]})
    if classes:
        summary["by_class"] = {c: _recovery([r for r in with_catalogue if r["class"] == c]) for c in classes}
    return summary


def _recovery(rows: list[dict]) -> dict:
    """Shares over rows with a catalogue period; a skipped search counts as a miss, not as absent."""
    found = np.array([r["period_days"] for r in rows], np.float64)
    catalogue = np.array([r["catalogue_period_days"] for r in rows], np.float64)
    searched = np.isfinite(found)
    recovery = period_recovery(found[searched], catalogue[searched], TOLERANCE)
    scale = searched.sum() / len(rows) if len(rows) else 0.0
    share = lambda key: float(recovery[key] * scale) if recovery["n"] else 0.0  # noqa: E731
    return {
        "n": len(rows),
        "within_1pct": share("within_tolerance"),
        "within_1pct_or_alias": share("within_tolerance_or_alias"),
        "double": share("double"),
        "half": share("half"),
    }


def write_periods_csv(rows: list[dict], path: Path) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=PERIODS_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
    return path


def _cell(value):
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.10g}"
    return value


def plot_object(obj: LabelledLightCurve, row: dict, config: PeriodSearchConfig, path: Path) -> Path:
    """Periodogram (the found peak and the catalogue period marked) above the folded light curve per band.

    The periodogram is astropy's on the same centred magnitudes over the search's period range, thinned
    to PLOT_FREQUENCIES points for drawing; the period reported is always the search's.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from astropy.timeseries import LombScargle

    lc = obj.lightcurve
    t, y, dy = np.asarray(lc.mjd, float), centre_bands(lc), np.asarray(lc.magerr, float)
    baseline = max(float(t[-1] - t[0]), config.min_period_days * 2)
    f0, f1 = 1.0 / min(config.max_period_days, baseline), 1.0 / config.min_period_days
    frequency = np.linspace(f0, f1, PLOT_FREQUENCIES)
    power = LombScargle(t, y, dy).power(frequency, method="fast")
    period, catalogue = row["period_days"], row["catalogue_period_days"]
    folds = [("found", period)] + ([("catalogue", catalogue)] if catalogue != "" else [])
    fig, axes = plt.subplots(1 + len(folds), 1, figsize=(8, 3 + 2.6 * len(folds)))
    ax = axes[0]
    ax.plot(1.0 / frequency, power, lw=0.5, color="0.3")
    ax.set_xscale("log")
    ax.axvline(period, color="C3", lw=1, label=f"found {period:.6g} d")
    if catalogue != "":
        ax.axvline(catalogue, color="C0", lw=1, ls="--", label=f"catalogue {catalogue:.6g} d")
    ax.set(xlabel="period [d]", ylabel="LS power", title=f"{obj.object_id} {obj.label or ''}".strip())
    ax.legend(fontsize=8)
    bands = np.asarray(lc.band).astype(str)
    for ax, (name, fold_period) in zip(axes[1:], folds, strict=True):
        phase = np.mod(t - t[0], fold_period) / fold_period
        for k, band in enumerate(sorted(set(bands))):
            mask = bands == band
            ax.errorbar(phase[mask], y[mask], dy[mask], fmt=".", ms=2, lw=0.3, color=f"C{k}", label=band)
        ax.invert_yaxis()
        ax.set(xlabel=f"phase at the {name} period {fold_period:.6g} d", ylabel="mag (bands centred)")
        ax.legend(fontsize=8, markerscale=3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
