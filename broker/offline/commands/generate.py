"""Generate synthetic periodic light curves with the PELS-VAE generator (CSV, or CRTS files for replay).

Parameters (period, rms amplitude, mean magnitude, noise) are drawn from the training catalogue of each
class; --period fixes the period instead. Cadences: regular, random, lightcurve (the times of real light
curves from --times-from), lsst or ztf (survey-like seasons, nightly gaps, a few visits per night).

--format csv writes OUT/lightcurves.csv (id, class, mjd, mag, magerr, band); --format crts writes one
OUT/lightcurves/<ID>-<CLASS>.csv per light curve with the CRTS columns, so
``varstream evaluate --data crts:OUT/lightcurves`` and ``varstream replay --data crts:OUT/lightcurves`` read
them directly. Both write OUT/truth.csv (the schema of broker.offline.truth, shared with replay: objectId,
class, period, the drawn parameters, noise, cadence, RA/Dec).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from broker.errors import ArchiveError, BundleError, ConfigError

FORMATS = ("csv", "crts")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from broker.offline.generate import CADENCES

    parser.add_argument("--bundle", type=Path, help="generator bundle (default: the shipped one)")
    parser.add_argument("--class", dest="classes", action="append", help="class to generate; repeatable")
    parser.add_argument("--all-classes", action="store_true", help="every class the generator knows")
    parser.add_argument("--n", type=int, default=10, help="light curves per class")
    parser.add_argument("--period", type=float, help="period [days] (default: drawn from the catalogue)")
    parser.add_argument("--cadence", choices=CADENCES, default="random")
    parser.add_argument("--n-points", type=int, help="points per light curve (regular/random; cap otherwise)")
    parser.add_argument("--baseline-days", type=float, help="time span of regular/random cadences")
    parser.add_argument("--step-days", type=float, help="spacing of the regular cadence")
    parser.add_argument("--years", type=float, help="survey length (lsst/ztf cadences)")
    parser.add_argument(
        "--times-from", help="FORMAT:PATH archive, or one light curve's CSV with an MJD column"
    )
    parser.add_argument("--noise", default="auto", help="magnitude error [mag], 0, or auto (catalogue)")
    parser.add_argument("--latent-scatter", type=float, default=1.0, help="x regression residual; 0: none")
    parser.add_argument("--band", default="V", help="band name written with every point")
    parser.add_argument("--format", choices=FORMATS, default="csv")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--id-prefix", default="SYN", help="object ids are PREFIX + 6 digits (no '-')")
    parser.add_argument("--seed", type=int, default=0)


def times_pool(spec: str) -> tuple[np.ndarray, ...]:
    """Times of real light curves: every object of a FORMAT:PATH archive, or the MJD column of one light
    curve's CSV (e.g. a CRTS <ID>-<CLASS>.csv)."""
    path = Path(spec)
    if path.suffix == ".csv" and path.is_file():
        import pandas as pd

        frame = pd.read_csv(path)
        column = next((c for c in frame.columns if c.strip().strip('"').lower() == "mjd"), None)
        if column is None:
            raise ArchiveError(f"{path}: need an MJD column, got {list(frame.columns)}")
        return (np.sort(frame[column].to_numpy(np.float64)),)
    from broker.offline.commands.train import load_labelled_objects

    return tuple(obj.lightcurve.mjd for obj in load_labelled_objects(spec))


def parse_noise(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ConfigError(f"--noise must be a magnitude error >= 0 or 'auto', got {text!r}")
    return value


def main(args: argparse.Namespace) -> int:
    from broker.offline.generate import (
        cadence_from_args,
        generate_lightcurves,
        write_crts,
        write_csv,
    )
    from broker.offline.truth import truth_row, write_truth
    from models.bundle import BundleFormatError
    from models.pelsvae import DEFAULT_GENERATOR_BUNDLE, load_pelsvae_bundle

    try:
        bundle = load_pelsvae_bundle(args.bundle or DEFAULT_GENERATOR_BUNDLE)
    except BundleFormatError as err:
        raise BundleError(str(err)) from err
    if args.all_classes == bool(args.classes):
        raise ConfigError(f"give --class (repeatable) or --all-classes; known: {bundle.class_names}")
    classes = bundle.class_names if args.all_classes else args.classes
    if args.cadence == "lightcurve" and not args.times_from:
        raise ConfigError("--cadence lightcurve needs --times-from FORMAT:PATH or a CSV with an MJD column")
    pool = times_pool(args.times_from) if args.cadence == "lightcurve" else ()
    cadence = cadence_from_args(
        args.cadence, args.n_points, args.baseline_days, args.step_days, args.years, pool
    )
    objects = generate_lightcurves(
        bundle,
        classes,
        args.n,
        cadence,
        seed=args.seed,
        period=args.period,
        noise=parse_noise(args.noise),
        band=args.band,
        id_prefix=args.id_prefix,
        latent_scatter=args.latent_scatter,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    if args.format == "crts":
        write_crts(objects, args.out / "lightcurves")
        where = args.out / "lightcurves"
    else:
        where = write_csv(objects, args.out / "lightcurves.csv")
    write_truth(args.out / "truth.csv", (truth_row(obj) for obj in objects))
    print(f"{len(objects)} light curves ({', '.join(classes)}; cadence {cadence.kind}) -> {where}")
    return 0
