"""The plugin's own Lomb-Scargle period search on an archive: a table of periods, a summary and plots.

DATA is FORMAT:PATH, any archive `varstream replay` reads (ogle, asassn, crts, eros, csv), with the same
reader options. The search is `broker.period.search_periods` with the classifier bundle's period settings
(period range, grid oversampling, multiband centring), exactly as the plugin runs it before folding. Into
--out go periods.csv (objectId, class, n_points, bands, period_days, power, false_alarm_probability,
catalogue_period_days, ratio, match, skip_reason), summary.json (n, skipped, and where the archive has
catalogue periods within_1pct and within_1pct_or_alias counting the x2 and x1/2 aliases, overall and per
class) and plots/<objectId>.png (periodogram + folded light curve) for a sample of objects.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from broker.offline.archives.options import add_reader_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="FORMAT:PATH (ogle, asassn, crts, eros or csv)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--bundle", type=Path, help="classifier bundle whose period settings to use")
    parser.add_argument("--classes", help="comma-separated classes to keep (e.g. Cep_F)")
    parser.add_argument("--limit", type=int, help="a random sample of N objects")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --limit and plot samples")
    parser.add_argument("--max-points", type=int, help="the first N points of each object")
    parser.add_argument("--plots", type=int, default=12, help="objects to plot (default 12; 0: none)")
    parser.add_argument("--threads", type=int, help="period-search threads (default: the bundle's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_reader_arguments(parser)


def period_config_of(bundle: Path | None, threads: int | None):
    """The bundle's period-search settings (read from its metadata.json, no weights loaded)."""
    import dataclasses

    from broker.errors import BundleError
    from broker.offline.commands.settings import configs_from
    from models.bundle import DEFAULT_CLASSIFIER_BUNDLE, METADATA_FILE

    path = Path(bundle or DEFAULT_CLASSIFIER_BUNDLE) / METADATA_FILE
    try:
        settings = json.loads(path.read_text())["period_search"]
        config, _ = configs_from(settings, None)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise BundleError(f"cannot read the period settings of bundle {path.parent}: {err}") from err
    return dataclasses.replace(config, threads=threads) if threads else config


def select(objects: list, args: argparse.Namespace) -> list:
    import numpy as np

    from broker.errors import ConfigError
    from broker.offline.dataset import cut_to_first

    if args.classes:
        keep = {c.strip() for c in args.classes.split(",")}
        objects = [o for o in objects if o.label in keep]
        if not objects:
            raise ConfigError(f"no objects of classes {sorted(keep)} in {args.data}")
    if args.limit and len(objects) > args.limit:
        rng = np.random.default_rng(args.seed)
        objects = [objects[i] for i in sorted(rng.choice(len(objects), args.limit, replace=False))]
    return [cut_to_first(o, args.max_points) for o in objects]


def main(args: argparse.Namespace) -> int:
    import dataclasses

    import numpy as np

    from broker.errors import ArchiveError
    from broker.offline.archives.options import open_archives, reader_options
    from broker.offline.periods import plot_object, search_archive, summarise, write_periods_csv

    config = period_config_of(args.bundle, args.threads)
    (archive,) = open_archives([args.data], reader_options(args))
    objects = select(list(archive), args)
    if not objects:
        raise ArchiveError(f"{args.data}: no light curves")
    if archive.report.bad_rows or archive.report.dropped or archive.report.notes:
        print(f"{args.data}: {archive.report.summary()}", file=sys.stderr)
    rows, _, seconds = search_archive(objects, config, progress=not args.no_progress and sys.stderr.isatty())
    args.out.mkdir(parents=True, exist_ok=True)
    write_periods_csv(rows, args.out / "periods.csv")
    summary = {
        "data": args.data,
        "bundle": str(args.bundle or "default"),
        "period_search": dataclasses.asdict(config),
        **summarise(rows),
        "read_report": archive.report.summary(),
        "search_seconds": seconds,
        "search_ms_per_lightcurve": 1e3 * seconds / len(rows),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    searched = [k for k, r in enumerate(rows) if not r["skip_reason"]]
    n_plots = min(args.plots, len(searched))
    if n_plots:
        (args.out / "plots").mkdir(exist_ok=True)
        chosen = np.random.default_rng(args.seed).choice(searched, n_plots, replace=False)
        for k in sorted(chosen):
            name = "".join(c if c.isalnum() or c in "-_." else "_" for c in rows[k]["objectId"])
            plot_object(objects[k], rows[k], config, args.out / "plots" / f"{name}.png")
    _print_summary(summary, args.out, n_plots)
    return 0


def _print_summary(summary: dict, out: Path, n_plots: int) -> None:
    print(
        f"{summary['n']} light curves, {summary['n_searched']} searched "
        f"({summary['search_ms_per_lightcurve']:.0f} ms each); skipped {summary['skipped'] or 'none'}"
    )
    if "within_1pct" in summary:
        print(
            f"{summary['n_with_catalogue_period']} with catalogue periods: "
            f"within 1% {summary['within_1pct']:.3f}, "
            f"with x2/x1/2 aliases {summary['within_1pct_or_alias']:.3f}"
        )
        for name, part in summary.get("by_class", {}).items():
            print(
                f"  {name:14s} n {part['n']:5d}  within 1% {part['within_1pct']:.3f}  "
                f"or alias {part['within_1pct_or_alias']:.3f}"
            )
    print(f"wrote {out}/periods.csv, {out}/summary.json and {n_plots} plots in {out}/plots/")
