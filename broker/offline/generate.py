"""Synthetic periodic light curves from the PELS-VAE generator: cadences, generation, files, and checks.

Cadences (`CadenceSpec.kind`):
- ``regular``: n_points every step_days (default baseline_days / n_points).
- ``random``: n_points uniform over baseline_days.
- ``lightcurve``: the times of real light curves (`times_pool`, one drawn per generated curve).
- ``lsst`` / ``ztf``: survey-like: an observing season per year, nights separated by random gaps around
  the revisit time with some nights lost to weather, and a few visits per night some minutes apart
  (`SURVEYS`); `years` long, cut to n_points when given.

`generate_lightcurves` returns `LabelledLightCurve`s (the class, the requested period and parameters in
`extra`), which `write_crts` turns into ``<ID>-<CLASS>.csv`` files that `models.data.read_crts`,
``varstream evaluate --data crts:DIR`` and ``varstream replay --data crts:DIR`` read directly, and
`broker.offline.truth` into truth.csv. `check_generated` measures fidelity as the plugin would see it: the
plugin's own period search (is the requested period recovered within 1%?), folding, and a classifier
bundle (is the conditioned class predicted?).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from broker.errors import ConfigError
from models.lightcurve import LabelledLightCurve, LightCurve

CADENCES = ("regular", "random", "lightcurve", "lsst", "ztf")
CRTS_HEADER = '"ID","MJD","mag","magerr","RA","Dec"'


@dataclass(frozen=True)
class SurveyCadence:
    """A ground-based survey's sampling of one field.

    season_days: observable span each year; revisit_days: mean gap between observed nights (≥ 1);
    night_loss: share of scheduled nights lost (weather); visits_per_night and visit_gap_hours: repeat
    visits in a night; start_mjd: first night.
    """

    name: str
    season_days: float
    revisit_days: float
    night_loss: float
    visits_per_night: int
    visit_gap_hours: float
    start_mjd: float


# Rough single-field numbers, all bands together: LSST WFD revisits a field every ~3 nights with pairs of
# visits ~33 min apart over a ~6-month season; ZTF's public survey every ~2 nights, g and r ~1 h apart.
SURVEYS = {
    "lsst": SurveyCadence("lsst", 180.0, 3.0, 0.25, 2, 0.55, 60800.0),
    "ztf": SurveyCadence("ztf", 240.0, 2.0, 0.2, 2, 1.0, 58300.0),
}


@dataclass(frozen=True)
class CadenceSpec:
    """How to sample times; see the module docstring. years: survey length (lsst/ztf)."""

    kind: str = "random"
    n_points: int | None = 200
    baseline_days: float = 1000.0
    step_days: float | None = None
    years: float = 3.0
    start_mjd: float = 53500.0
    times_pool: tuple[np.ndarray, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in CADENCES:
            raise ConfigError(f"unknown cadence {self.kind!r}; valid: {list(CADENCES)}")
        if self.kind in ("regular", "random") and not (self.n_points and self.n_points >= 2):
            raise ConfigError(f"cadence {self.kind} needs n_points >= 2, got {self.n_points}")
        if self.n_points is not None and self.n_points < 2:
            raise ConfigError(f"n_points must be >= 2, got {self.n_points}")
        if self.kind == "lightcurve" and not self.times_pool:
            raise ConfigError("cadence 'lightcurve' needs the times of at least one real light curve")
        if self.baseline_days <= 0 or self.years <= 0:
            raise ConfigError(f"need baseline_days > 0 and years > 0, got {self.baseline_days}, {self.years}")


def make_times(spec: CadenceSpec, rng: np.random.Generator) -> np.ndarray:
    """Sorted (m,) float64 MJDs of one light curve (m >= 2)."""
    times = _times(spec, rng)
    if len(times) < 2:
        raise ConfigError(
            f"cadence {spec.kind} gave {len(times)} points; lengthen it (years, n_points, times)"
        )
    return times


def _times(spec: CadenceSpec, rng: np.random.Generator) -> np.ndarray:
    if spec.kind == "regular":
        step = spec.step_days or spec.baseline_days / spec.n_points
        return spec.start_mjd + step * np.arange(spec.n_points)
    if spec.kind == "random":
        return np.sort(spec.start_mjd + rng.uniform(0.0, spec.baseline_days, spec.n_points))
    if spec.kind == "lightcurve":
        times = np.sort(np.asarray(spec.times_pool[rng.integers(len(spec.times_pool))], np.float64))
        return times if spec.n_points is None else times[: spec.n_points]
    return survey_times(SURVEYS[spec.kind], spec.years, spec.n_points, rng)


def survey_times(survey: SurveyCadence, years: float, n_points: int | None, rng) -> np.ndarray:
    """Times of a field observed by `survey` for `years` (cut to the first n_points when given)."""
    times = []
    offset = rng.uniform(0, 365.25 - survey.season_days)  # where the field's season falls in the year
    for year in range(math.ceil(years)):
        season_start = survey.start_mjd + 365.25 * year + offset
        night = season_start + rng.uniform(0, survey.revisit_days)
        while night < season_start + survey.season_days and night < survey.start_mjd + 365.25 * years:
            if rng.random() >= survey.night_loss:
                first = math.floor(night) + rng.uniform(-0.15, 0.15)  # around local midnight
                gaps = survey.visit_gap_hours / 24 * (1 + 0.2 * rng.standard_normal(survey.visits_per_night))
                times.extend(first + np.concatenate([[0.0], np.cumsum(np.abs(gaps[1:]))]))
            night += max(1.0, rng.exponential(survey.revisit_days))
    times = np.sort(np.asarray(times))
    return times if n_points is None else times[:n_points]


# ------------------------------------------------------------------------------------------ generation


def generate_lightcurves(
    bundle,
    classes: Sequence[str],
    n_per_class: int,
    cadence: CadenceSpec,
    seed: int = 0,
    period: float | None = None,
    noise: float | str = "auto",
    band: str = "V",
    id_prefix: str = "SYN",
    latent_scatter: float = 1.0,
    first_index: int = 0,
) -> list[LabelledLightCurve]:
    """n_per_class light curves of each class from a `models.pelsvae.PelsVaeBundle`.

    Parameters (period, rms amplitude, mean magnitude, noise) are drawn from the training catalogue of the
    class; `period` [days] replaces the drawn period when given. Each curve gets its own cadence draw and
    a random epoch. Ids are id_prefix + a 6-digit running number from first_index. extra holds the truth:
    params, noise, peak-to-peak amplitude, cadence, RA/Dec.
    """
    if n_per_class < 1:
        raise ConfigError(f"n_per_class must be >= 1, got {n_per_class}")
    if period is not None and not period > 0:
        raise ConfigError(f"period must be > 0 days, got {period!r}")
    unknown = sorted(set(classes) - set(bundle.class_names))
    if unknown:
        raise ConfigError(f"classes {unknown} are not known to generator {bundle.name}: {bundle.class_names}")
    rng = np.random.default_rng(seed)
    out = []
    for label in classes:
        params, drawn_noise = bundle.draw_params(label, n_per_class, rng)
        if period is not None:
            params[:, 0] = math.log10(period)
        for row, noise_row in zip(params, drawn_noise, strict=True):
            times = make_times(cadence, rng)
            level = noise_row if noise == "auto" else noise
            curve = bundle.generate(
                label, row, times=times, n=1, noise=level, seed=rng, latent_scatter=latent_scatter
            )
            object_id = f"{id_prefix}{first_index + len(out):06d}"
            lc = LightCurve.from_arrays(times, curve.mag[0], curve.magerr[0], band)
            extra = {
                "synthetic": True,
                "generator": bundle.name,
                "log10_period": float(row[0]),
                "amplitude_rms": float(10 ** row[1]),
                "mean_mag": float(row[2]),
                "noise_mag": float(curve.noise[0]),
                "peak_to_peak": float(curve.peak_to_peak[0]),
                "cadence": cadence.kind,
                "ra": float(rng.uniform(0.0, 360.0)),
                "dec": float(np.degrees(np.arcsin(rng.uniform(-1.0, 0.5)))),
            }
            out.append(LabelledLightCurve(object_id, label, lc, float(10 ** row[0]), extra))
    return out


def write_crts(objects: Sequence[LabelledLightCurve], folder: str | Path) -> list[Path]:
    """One ``<ID>-<CLASS>.csv`` per object with the CRTS columns; returns the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for obj in objects:
        if "-" in obj.object_id or not obj.label or "-" in obj.label:
            raise ConfigError(
                f"CRTS file names are <ID>-<CLASS>.csv: id {obj.object_id!r} / class {obj.label!r}"
            )
        lc = obj.lightcurve
        ra, dec = obj.extra.get("ra", 0.0), obj.extra.get("dec", 0.0)
        lines = [CRTS_HEADER] + [
            f"{obj.object_id},{t:.6f},{m:.4f},{e:.4f},{ra:.6f},{dec:.6f}"
            for t, m, e in zip(lc.mjd, lc.mag, lc.magerr, strict=True)
        ]
        path = folder / f"{obj.object_id}-{obj.label}.csv"
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    return paths


def write_csv(objects: Sequence[LabelledLightCurve], path: str | Path) -> Path:
    """All points in one long CSV: id, class, mjd, mag, magerr, band."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "class", "mjd", "mag", "magerr", "band"])
        for obj in objects:
            lc = obj.lightcurve
            for t, m, e, b in zip(lc.mjd, lc.mag, lc.magerr, lc.band, strict=True):
                writer.writerow([obj.object_id, obj.label, f"{t:.6f}", f"{m:.4f}", f"{e:.4f}", b])
    return path


# -------------------------------------------------------------------------------------------- checks


@dataclass
class SearchedWindows:
    """Generated objects after the plugin's period search and folding.

    found_periods: (n,) days, NaN when the search skipped; windows: labelled `Windows` of every object
    that gave one (folded with its found period, as at inference).
    """

    objects: list[LabelledLightCurve]
    found_periods: np.ndarray
    windows: object


def search_and_fold(objects: Sequence[LabelledLightCurve], period_config=None, window_config=None):
    """Run `broker.period.search_periods` and `broker.folding.make_windows_batch` on generated objects."""
    from broker.folding import WindowConfig, make_windows_batch
    from broker.period import PeriodSearchConfig, search_periods

    period_config = period_config or PeriodSearchConfig()
    window_config = window_config or WindowConfig()
    results = search_periods([o.lightcurve for o in objects], period_config)
    found = np.array([r.period_days for r in results])
    ok = [i for i, r in enumerate(results) if r.searched]
    windows = make_windows_batch(
        [objects[i].lightcurve for i in ok],
        [found[i] for i in ok],
        [objects[i].object_id for i in ok],
        [objects[i].label for i in ok],
        window_config,
    )
    return SearchedWindows(list(objects), found, windows)


def check_generated(searched: SearchedWindows, classifier=None, tolerance: float = 0.01) -> dict:
    """Per class: share of generated curves whose found period is within `tolerance` of the requested one
    (and ×2/×½ aliases), and, with a classifier bundle, share classified as the conditioned class.

    Objects without a window (search skipped, too few points) count as not recovered / not classified.
    """
    from models.evaluate import aggregate_by_object

    labels = np.array([o.label for o in searched.objects], object)
    requested = np.array([o.period for o in searched.objects], np.float64)
    ratio = searched.found_periods / requested
    within = np.abs(ratio - 1) <= tolerance
    alias = within | (np.abs(ratio / 2 - 1) <= tolerance) | (np.abs(ratio * 2 - 1) <= tolerance)
    predicted = {}
    if classifier is not None and len(searched.windows):
        w = searched.windows
        scores = aggregate_by_object(w.object_ids, classifier.predict(w).proba, w.labels)
        predicted = dict(zip(scores.object_ids, scores.predicted(classifier.class_names), strict=True))
    report = {"tolerance": tolerance, "per_class": {}}
    for label in dict.fromkeys(labels):
        mask = labels == label
        entry = {
            "n": int(mask.sum()),
            "period_within_tolerance": float(within[mask].mean()),
            "period_within_tolerance_or_alias": float(alias[mask].mean()),
        }
        if classifier is not None and label in classifier.class_names:
            ids = [o.object_id for o, m in zip(searched.objects, mask, strict=True) if m]
            hits = [predicted.get(i) == label for i in ids]
            entry["classified_as_conditioned"] = float(np.mean(hits))
            entry["predicted_counts"] = _counts(predicted.get(i, "no_window") for i in ids)
        report["per_class"][label] = entry
    report["period_within_tolerance"] = float(within.mean()) if len(within) else math.nan
    scored = [
        v["classified_as_conditioned"]
        for v in report["per_class"].values()
        if "classified_as_conditioned" in v
    ]
    if scored:
        report["classified_as_conditioned_mean_over_classes"] = float(np.mean(scored))
    return report


def _counts(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def cadence_from_args(kind: str, n_points, baseline_days, step_days, years, times_pool=()) -> CadenceSpec:
    """A CadenceSpec from command-line values (None: the spec's default)."""
    values = {"n_points": n_points, "baseline_days": baseline_days, "step_days": step_days, "years": years}
    chosen = {k: v for k, v in values.items() if v is not None}
    if kind in ("lsst", "ztf", "lightcurve") and "n_points" not in chosen:
        chosen["n_points"] = None
    return CadenceSpec(kind=kind, times_pool=tuple(times_pool), **chosen)
