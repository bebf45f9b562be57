"""The one Lomb-Scargle period search shared by the plugin and by training-window builds.

Why one search: a network trained on windows folded with period P must see alerts folded with the same
estimator of P (DESIGN: "the period used at inference is found by the same search"). Catalogue periods are
for comparison only. The bundle fixes the science (`PeriodSearchConfig`); the operator picks the engine
(`engines.ENGINES`, `[period]` in the plugin config), and every engine gives the same powers.

Layout follows astropy's Lomb-Scargle: `settings` (what is computed, what is returned), `grid` (inputs
checked and converted once), `engines` (one function per engine, one signature, "auto" resolved in one
place), `harmonic` (exact multi-harmonic fits and vectorised Baluev false-alarm probabilities), `choice`
(the alias-aware choice among the best peaks), `search`
(the batch path). Light curves that cannot be searched give a `PeriodResult` with `skip_reason` set and
NaN period, so one bad object never fails a batch.
"""

from broker.period.engines import (
    ENGINE_NAMES,
    ENGINES,
    available_engines,
    resolve_engine,
    run_engine,
    unavailable_reason,
)
from broker.period.grid import FrequencyGrid, Series, centre_bands, frequency_grid
from broker.period.search import search_periods
from broker.period.settings import (
    MULTIBAND_MODES,
    PEAK_CHOICES,
    SKIP_CONSTANT,
    SKIP_REASONS,
    SKIP_SHORT_BASELINE,
    SKIP_TOO_FEW_POINTS,
    PeriodConfigError,
    PeriodResult,
    PeriodSearchConfig,
)

__all__ = [
    "ENGINES",
    "ENGINE_NAMES",
    "MULTIBAND_MODES",
    "PEAK_CHOICES",
    "SKIP_CONSTANT",
    "SKIP_REASONS",
    "SKIP_SHORT_BASELINE",
    "SKIP_TOO_FEW_POINTS",
    "FrequencyGrid",
    "PeriodConfigError",
    "PeriodResult",
    "PeriodSearchConfig",
    "Series",
    "available_engines",
    "centre_bands",
    "frequency_grid",
    "resolve_engine",
    "run_engine",
    "search_periods",
    "unavailable_reason",
]
