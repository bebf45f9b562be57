"""What the period search computes (science, fixed by the bundle) and what it returns.

`PeriodSearchConfig` is part of every window-cache key and of every bundle's metadata ("period_search"):
a network trained on windows folded with one estimator of P must see alerts folded with the same one.
Every setting added after the first bundles defaults to the behaviour those bundles were built with, so a
bundle lacking the key keeps today's periods; `PeriodSearchConfig.v2()` names the recommended new science.
The engine that computes the periodogram (nifty-ls, astropy, GPU; threads) is operator configuration
(`[period]` in the plugin config), not science: `backend` and `threads` here are informational.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from broker.errors import ConfigError

SKIP_TOO_FEW_POINTS = "too_few_points"
SKIP_SHORT_BASELINE = "short_baseline"
SKIP_CONSTANT = "constant_magnitudes"
SKIP_REASONS = (SKIP_TOO_FEW_POINTS, SKIP_SHORT_BASELINE, SKIP_CONSTANT)

# centre: subtract each band's median, one single-band periodogram (the first bundles).
# per-band: VanderPlas & Ivezic (2015) Nbase=0, Nband=1: own offset + sinusoid per band, one shared
#   frequency; power = sum of per-band chi^2 reductions / sum of per-band chi^2_0.
MULTIBAND_MODES = ("centre", "per-band")
# max: the highest periodogram peak (the first bundles). harmonic: refit the top peaks, their 2P and
#   daily aliases with a multi-harmonic model and keep the lowest BIC.
PEAK_CHOICES = ("max", "harmonic")
# chosen: fold windows with the published period (the first bundles). peak: fold with the highest refined
#   periodogram peak, before the alias/2P choice, so every object of a class folds the same way.
FOLD_ON = ("chosen", "peak")

# Settings added after the first bundles, at the values that reproduce them: left out of fingerprints.
_LEGACY_DEFAULTS = {
    "peak_choice": "max",
    "candidates": 5,
    "harmonic_terms": 3,
    "coarse_factor": 1,
    "fold_on": "chosen",
    "min_cycles": 0.0,
}


class PeriodConfigError(ConfigError, ValueError):
    """A period-search setting is invalid (also a ValueError, as astropy raises for unknown methods)."""


@dataclass(frozen=True)
class PeriodSearchConfig:
    """Settings of the period search.

    min_period_days / max_period_days: searched range [days]; the longest period is also capped at the
    light curve's baseline. oversampling: grid points per peak width 1/baseline (the native grid).
    max_frequencies: cap on grid points per light curve (step widened, peak refined, above it).
    multiband: one of MULTIBAND_MODES. min_points: fewer points are skipped. peak_choice: one of
    PEAK_CHOICES; candidates: periodogram peaks refitted by "harmonic"; harmonic_terms: Fourier terms of
    that refit (2P is fitted with twice as many). coarse_factor: > 1 evaluates the periodogram on a grid
    this many times coarser, then the best `4 * candidates` coarse peaks exactly on the native grid.
    fold_on: one of FOLD_ON, the period `PeriodResult.fold_period_days` carries (windows fold with it).
    min_cycles: "harmonic" chooses only periods that repeat this often over the baseline (0: any).
    backend, threads: informational (what the bundle was built with); the engine is chosen by the operator.
    """

    min_period_days: float = 0.05
    max_period_days: float = 1000.0
    oversampling: int = 5
    max_frequencies: int = 1_000_000
    backend: str = "nifty-ls"
    multiband: str = "centre"
    min_points: int = 10
    threads: int = 1
    peak_choice: str = "max"
    candidates: int = 5
    harmonic_terms: int = 3
    coarse_factor: int = 1
    fold_on: str = "chosen"
    min_cycles: float = 0.0

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
        if self.candidates < 1 or not 1 <= self.harmonic_terms <= 6 or self.coarse_factor < 1:
            raise PeriodConfigError(
                "need candidates >= 1, 1 <= harmonic_terms <= 6, coarse_factor >= 1; got "
                f"{self.candidates}, {self.harmonic_terms}, {self.coarse_factor}"
            )
        if not self.min_cycles >= 0:
            raise PeriodConfigError(f"need min_cycles >= 0, got {self.min_cycles}")
        if self.multiband not in MULTIBAND_MODES:
            raise PeriodConfigError(
                f"unknown multiband mode {self.multiband!r}; valid: {list(MULTIBAND_MODES)}"
            )
        if self.peak_choice not in PEAK_CHOICES:
            raise PeriodConfigError(f"unknown peak_choice {self.peak_choice!r}; valid: {list(PEAK_CHOICES)}")
        if self.fold_on not in FOLD_ON:
            raise PeriodConfigError(f"unknown fold_on {self.fold_on!r}; valid: {list(FOLD_ON)}")
        from broker.period.engines import ENGINE_NAMES

        if self.backend not in ENGINE_NAMES:
            raise PeriodConfigError(f"unknown period-search engine {self.backend!r}; valid: {ENGINE_NAMES}")

    @classmethod
    def v2(cls, **overrides) -> PeriodSearchConfig:
        """The recommended science for the next retraining (issue 11): HADS reachable (0.03 d), one shared
        period over per-band sinusoids, alias-aware choice by a 3-term refit, coarse-to-fine grid,
        windows folded on the highest peak (the published period stays the alias-aware choice)."""
        settings = {
            "min_period_days": 0.03,
            "multiband": "per-band",
            "peak_choice": "harmonic",
            "candidates": 5,
            "harmonic_terms": 3,
            "coarse_factor": 3,
            "fold_on": "peak",
            "min_cycles": 3.0,
        }
        return cls(**(settings | overrides))

    def fingerprint(self) -> dict:
        """The settings as a dict, without later-added keys that sit at their legacy value: window caches
        and bundles built before those keys existed keep their keys."""
        values = dataclasses.asdict(self)
        return {k: v for k, v in values.items() if not (k in _LEGACY_DEFAULTS and v == _LEGACY_DEFAULTS[k])}


@dataclass(frozen=True)
class PeriodResult:
    """Best period of one light curve.

    period_days: NaN when skipped. power: Lomb-Scargle power (standard normalisation, 0..1) of the peak
    that carries the chosen period (for a period chosen at twice a peak's period, that peak's power).
    false_alarm_probability: Baluev upper bound for that power (1.0 when skipped). n_frequencies: points
    evaluated. skip_reason: one of SKIP_REASONS, or None when searched. runner_up_period_days: the best
    candidate more than 1% away from the chosen period (NaN when there is none). fold_period_days: the
    period windows are folded with: the highest refined periodogram peak's (before the alias/2P choice)
    when fold_on is "peak", else period_days (NaN when skipped; defaults to period_days when not given).
    """

    period_days: float
    power: float
    false_alarm_probability: float
    n_frequencies: int
    skip_reason: str | None = None
    runner_up_period_days: float = math.nan
    fold_period_days: float | None = None

    def __post_init__(self) -> None:
        if self.fold_period_days is None:
            object.__setattr__(self, "fold_period_days", self.period_days)

    @property
    def searched(self) -> bool:
        return self.skip_reason is None

    def significant(self, max_false_alarm_probability: float = 0.01) -> bool:
        return self.searched and self.false_alarm_probability <= max_false_alarm_probability
