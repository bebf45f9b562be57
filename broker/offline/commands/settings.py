"""The settings that make a bundle's windows, as the offline commands take them: the period search
(--period-settings) and the window cutting (--short-window), and rebuilding both from a bundle's dicts."""

from __future__ import annotations

import argparse

from broker.errors import ConfigError

# --period-settings: v1 is the search the shipped bundles were built with; v2 the issue-11 science
# (PeriodSearchConfig.v2: 0.03 d, per-band model, alias-aware harmonic choice, coarse grid).
PERIOD_SETTINGS = ("v1", "v2")
SHORT_WINDOWS = ("bucket", "all")  # broker.folding.SHORT_WINDOWS, spelled out: parsing imports no numpy


def configs_from(period_search: dict | None = None, window: dict | None = None):
    """(PeriodSearchConfig, WindowConfig) from bundle-style dicts (lists back to tuples); defaults if None."""
    from broker.folding import WindowConfig
    from broker.period import PeriodSearchConfig

    def build(cls, values):
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in (values or {}).items()})

    return build(PeriodSearchConfig, period_search), build(WindowConfig, window)


def period_config_named(name: str):
    """The PeriodSearchConfig of a --period-settings name (one of PERIOD_SETTINGS)."""
    from broker.period import PeriodSearchConfig

    if name == "v1":
        return PeriodSearchConfig()
    if name == "v2":
        return PeriodSearchConfig.v2()
    raise ConfigError(f"unknown period settings {name!r}; valid: {list(PERIOD_SETTINGS)}")


def add_period_settings_argument(parser: argparse.ArgumentParser) -> None:
    """--period-settings and --short-window: how the windows are built (stored in the bundle, used at
    inference)."""
    parser.add_argument(
        "--period-settings",
        choices=PERIOD_SETTINGS,
        default="v1",
        help="period search for the windows: v1 (the shipped bundles') or v2 (0.03 d, per-band, harmonic "
        "peak choice); written into the bundle, so the plugin folds alerts with the same search",
    )
    parser.add_argument(
        "--short-window",
        choices=SHORT_WINDOWS,
        default="bucket",
        help="a curve under L points gives one window of the largest bucket of its latest points (bucket, "
        "the first bundles') or of all its points (all: the served bundles' since 2026-12-07; a classifier "
        "served beside crts-itcn's head needs it); written into the bundle",
    )


def settings_named(args: argparse.Namespace):
    """(PeriodSearchConfig, WindowConfig) of --period-settings and --short-window."""
    _, window_config = configs_from({}, {"short_window": args.short_window})
    return period_config_named(args.period_settings), window_config
