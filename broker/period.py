"""The one Lomb-Scargle period search shared by the plugin and by training-window builds.

Why one search: a network trained on windows folded with period P must see alerts folded with the same
estimator of P (DESIGN: "the period used at inference is found by the same search"). Catalogue periods are
for comparison only.

Layout follows astropy's Lomb-Scargle: each backend is one small function with one signature, registered
by name in `BACKENDS`; "auto" is resolved in `resolve_backend` only; the public edge (`search_periods`)
checks and converts inputs once (float64, centred multiband magnitudes, frequency grid), so backends see
plain ndarrays.

Frequency grid (cycles/day): f from 1/min(max_period_days, baseline) to 1/min_period_days with step
1/(oversampling·baseline). When that needs more than `max_frequencies` points the step is widened to fit
and the best peak is refined on a local grid of the native step (same backend), so long baselines cost
bounded time without losing the peak. Power uses astropy's "standard" normalisation (0..1, floating mean);
the false-alarm probability of the peak is Baluev's (2008) upper bound, from astropy.

Light curves that cannot be searched (too few points, baseline shorter than the shortest period, constant
magnitudes) give a `PeriodResult` with `skip_reason` set and NaN period, so one bad object never fails a
batch and the plugin can count skips by reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from broker.errors import ConfigError
from models.lightcurve import LightCurve

SKIP_TOO_FEW_POINTS = "too_few_points"
SKIP_SHORT_BASELINE = "short_baseline"
SKIP_CONSTANT = "constant_magnitudes"
SKIP_REASONS = (SKIP_TOO_FEW_POINTS, SKIP_SHORT_BASELINE, SKIP_CONSTANT)

MULTIBAND_MODES = ("centre",)


class PeriodConfigError(ConfigError, ValueError):
    """A period-search setting is invalid (also a ValueError, as astropy raises for unknown methods)."""


@dataclass(frozen=True)
class PeriodSearchConfig:
    """Settings of the period search; part of every window-cache key, so change = new training windows.

    min_period_days / max_period_days: searched range [days]; the longest period is also capped at the
    light curve's baseline. oversampling: grid points per peak width 1/baseline. max_frequencies: cap on
    grid points per light curve (step widened, peak refined, above it). backend: name in BACKENDS or
    "auto". multiband: "centre" = subtract each band's median (add back the fullest band's) and run one
    single-band periodogram. min_points: fewer points are skipped. threads: per backend call (1: the plugin
    scales out by processes).
    """

    min_period_days: float = 0.05
    max_period_days: float = 1000.0
    oversampling: int = 5
    max_frequencies: int = 1_000_000
    backend: str = "nifty-ls"
    multiband: str = "centre"
    min_points: int = 10
    threads: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.min_period_days < self.max_period_days:
            raise PeriodConfigError(
                "need 0 < min_period_days < max_period_days, "
                f"got {self.min_period_days}, {self.max_period_days}"
            )
        if self.oversampling < 1 or self.max_frequencies < 16 or self.min_points < 3 or self.threads < 1:
            raise PeriodConfigError(
                f"need oversampling >= 1, max_frequencies >= 16, min_points >= 3, threads >= 1; got "
                f"{self.oversampling}, {self.max_frequencies}, {self.min_points}, {self.threads}"
            )
        if self.multiband not in MULTIBAND_MODES:
            raise PeriodConfigError(
                f"unknown multiband mode {self.multiband!r}; valid: {list(MULTIBAND_MODES)}"
            )
        resolve_backend(self.backend)


@dataclass(frozen=True)
class PeriodResult:
    """Best period of one light curve.

    period_days: NaN when skipped. power: peak Lomb-Scargle power, standard normalisation (0..1).
    false_alarm_probability: Baluev upper bound (1.0 when skipped). n_frequencies: grid points evaluated
    (coarse + refinement). skip_reason: one of SKIP_REASONS, or None when searched.
    """

    period_days: float
    power: float
    false_alarm_probability: float
    n_frequencies: int
    skip_reason: str | None = None

    @property
    def searched(self) -> bool:
        return self.skip_reason is None

    def significant(self, max_false_alarm_probability: float = 0.01) -> bool:
        return self.searched and self.false_alarm_probability <= max_false_alarm_probability


@dataclass(frozen=True)
class FrequencyGrid:
    """Regular grid f0 + df·arange(n) [cycles/day]."""

    f0: float
    df: float
    n: int

    @property
    def fmax(self) -> float:
        return self.f0 + self.df * (self.n - 1)

    def frequencies(self) -> np.ndarray:
        return self.f0 + self.df * np.arange(self.n)


@dataclass(frozen=True)
class Series:
    """One prepared light curve as backends see it: float64 (n,) arrays, sorted t, and its grid."""

    t: np.ndarray
    y: np.ndarray
    dy: np.ndarray
    grid: FrequencyGrid


# A backend maps a batch of series to one (grid.n,) float64 power array per series, standard normalisation.
Backend = Callable[[Sequence[Series], int], list[np.ndarray]]


def _nifty_ls(batch: Sequence[Series], threads: int) -> list[np.ndarray]:
    """nifty-ls (FINUFFT), float64: float32 NUFFT loses the peak. nifty-ls 1.1 batches only series that
    share t, so heterogeneous light curves go one call each (its heterobatch API is in 2.0.dev only)."""
    from nifty_ls.finufft import lombscargle

    return [lombscargle(s.t, s.y, s.grid.f0, s.grid.df, s.grid.n, dy=s.dy, nthreads=threads) for s in batch]


def _astropy_fast(batch: Sequence[Series], threads: int) -> list[np.ndarray]:
    """astropy method="fast" with Press & Rybicki extirpolation ("fasper")."""
    from astropy.timeseries import LombScargle

    return [
        LombScargle(s.t, s.y, s.dy).power(
            s.grid.frequencies(),
            method="fast",
            method_kwds={"algorithm": "fasper"},
            assume_regular_frequency=True,
        )
        for s in batch
    ]


def _astropy(batch: Sequence[Series], threads: int) -> list[np.ndarray]:
    """astropy's default method ("auto": fast/low-rank approximation on large regular grids, else exact)."""
    from astropy.timeseries import LombScargle

    return [
        LombScargle(s.t, s.y, s.dy).power(s.grid.frequencies(), assume_regular_frequency=True) for s in batch
    ]


BACKENDS: dict[str, Backend] = {"nifty-ls": _nifty_ls, "astropy-fast": _astropy_fast, "astropy": _astropy}


def resolve_backend(name: str) -> str:
    """The one place "auto" is decided: nifty-ls when importable, else astropy-fast."""
    if name == "auto":
        try:
            import nifty_ls  # noqa: F401
        except ImportError:
            return "astropy-fast"
        return "nifty-ls"
    if name not in BACKENDS:
        raise PeriodConfigError(f"unknown period-search backend {name!r}; valid: {['auto', *BACKENDS]}")
    return name


def centre_bands(lc: LightCurve) -> np.ndarray:
    """(n,) float64 magnitudes with each band's median removed and the fullest band's median added back.

    Puts bands on a common zero point so one periodogram (or one folded window) sees one curve; the
    fullest band (ties: first name in sorted order) keeps its level so magnitudes stay physical.
    """
    mag = np.asarray(lc.mag, dtype=np.float64)
    bands = np.asarray(lc.band).astype(str)
    names, counts = np.unique(bands, return_counts=True)
    if len(names) <= 1:
        return mag.copy()
    centred = mag.copy()
    medians = {}
    for name in names:
        mask = bands == name
        medians[name] = float(np.median(mag[mask]))
        centred[mask] -= medians[name]
    return centred + medians[names[int(np.argmax(counts))]]


def frequency_grid(baseline_days: float, config: PeriodSearchConfig) -> tuple[FrequencyGrid, float]:
    """(grid, native step): grid capped at config.max_frequencies points; native step 1/(oversampling·T)."""
    native_df = 1.0 / (config.oversampling * baseline_days)
    f0 = 1.0 / min(config.max_period_days, baseline_days)
    f1 = 1.0 / config.min_period_days
    n = math.floor((f1 - f0) / native_df) + 1
    if n <= config.max_frequencies:
        return FrequencyGrid(f0, native_df, n), native_df
    return FrequencyGrid(f0, (f1 - f0) / (config.max_frequencies - 1), config.max_frequencies), native_df


def _prepare(lc: LightCurve, config: PeriodSearchConfig) -> tuple[Series | None, float, str | None]:
    """(series, native grid step, skip reason) for one light curve."""
    if len(lc) < config.min_points:
        return None, 0.0, SKIP_TOO_FEW_POINTS
    t = np.asarray(lc.mjd, dtype=np.float64)
    baseline = float(t[-1] - t[0])
    if not baseline > config.min_period_days:
        return None, 0.0, SKIP_SHORT_BASELINE
    y = centre_bands(lc)
    if np.ptp(y) == 0.0:
        return None, 0.0, SKIP_CONSTANT
    grid, native_df = frequency_grid(baseline, config)
    dy = np.ascontiguousarray(lc.magerr, dtype=np.float64)
    return Series(np.ascontiguousarray(t), np.ascontiguousarray(y), dy, grid), native_df, None


def _refine(series: Series, power: np.ndarray, native_df: float) -> Series:
    """Local grid spanning ±1 coarse step around the coarse peak, on the points of the uncapped native grid
    (so capping changes the answer only when the coarse peak sits in the wrong lobe)."""
    grid = series.grid
    peak = grid.f0 + grid.df * int(np.argmax(power))
    first = max(0, math.floor((peak - grid.df - grid.f0) / native_df))
    last = math.ceil((min(grid.fmax, peak + grid.df) - grid.f0) / native_df)
    f0, n = grid.f0 + first * native_df, last - first + 1
    return Series(series.t, series.y, series.dy, FrequencyGrid(f0, native_df, n))


def _false_alarm_probability(series: Series, power: float) -> float:
    from astropy.timeseries import LombScargle

    fap = LombScargle(series.t, series.y, series.dy).false_alarm_probability(
        power, method="baluev", maximum_frequency=series.grid.fmax
    )
    return float(np.clip(fap, 0.0, 1.0))


def search_periods(lightcurves: Sequence[LightCurve], config: PeriodSearchConfig) -> list[PeriodResult]:
    """Best Lomb-Scargle period of each light curve, one `PeriodResult` per input, in order.

    The whole batch goes to the backend in one call (a batched or GPU backend can use that); refinement
    of capped grids is a second batched call.
    """
    backend = BACKENDS[resolve_backend(config.backend)]
    prepared = [_prepare(lc, config) for lc in lightcurves]
    todo = [i for i, (series, _, _) in enumerate(prepared) if series is not None]
    coarse = dict(zip(todo, backend([prepared[i][0] for i in todo], config.threads), strict=True))

    capped = [i for i in todo if prepared[i][0].grid.df > prepared[i][1] * (1 + 1e-9)]
    local = {i: _refine(prepared[i][0], coarse[i], prepared[i][1]) for i in capped}
    fine = dict(zip(capped, backend([local[i] for i in capped], config.threads), strict=True))

    results = []
    for i, (series, _, skip_reason) in enumerate(prepared):
        if series is None:
            results.append(PeriodResult(math.nan, 0.0, 1.0, 0, skip_reason))
            continue
        grid, power = (local[i].grid, fine[i]) if i in fine else (series.grid, coarse[i])
        n_frequencies = series.grid.n + (local[i].grid.n if i in fine else 0)
        best = int(np.argmax(power))
        peak_power = float(power[best])
        frequency = grid.f0 + grid.df * best
        fap = _false_alarm_probability(series, peak_power)
        results.append(PeriodResult(1.0 / frequency, peak_power, fap, n_frequencies))
    return results
