"""Replay archival surveys as a live alert stream: a ZTF-like or LSST-like alert per detection, in time order.

ARCHIVE is FORMAT:PATH with FORMAT one of ogle, asassn, crts, eros, csv (e.g. crts:../shared/data/crts_kvmu).
Alerts go to a Kafka topic (--bootstrap, --topic; keyed by objectId) or to a folder of Avro files
(--to-folder). Default pace is real time (archive time -> wall time); --speed, --rate or
--as-fast-as-possible change it. Into --out go truth.csv (objectId, class, catalogue period, points,
first/last MJD), replay.json (settings and counts), bad_rows.csv (when --skip-bad-rows left any out)
and, for LSST, schemas/ (pass it to `varstream run --schema-dir`).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
from pathlib import Path

from broker.offline.archives.options import add_reader_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("archives", nargs="+", metavar="ARCHIVE", help="FORMAT:PATH, one or more")
    parser.add_argument(
        "--flavour", choices=("ztf", "lsst"), default="ztf", help="alert format (default ztf)"
    )
    parser.add_argument("--out", required=True, type=Path, help="run folder for truth.csv, replay.json, ...")
    add_sink_and_pace_arguments(parser, "archive")
    parser.add_argument("--objects", type=Path, help="replay only these archive ids (file: one per line)")
    parser.add_argument("--classes", help="comma-separated classes to keep")
    parser.add_argument("--limit", type=int, help="replay a random sample of N objects")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --limit sample (default 0)")
    parser.add_argument("--max-points", type=int, help="the first N detections of each object")
    parser.add_argument("--time-range", metavar="MJD0:MJD1", help="only detections in this MJD range")
    parser.add_argument("--history-days", type=float, help="history in each alert (default ztf 30, lsst 365)")
    parser.add_argument(
        "--band-map", metavar="A=b,...", help="archive band -> survey band (default V=r,I=i,B=g,R=r)"
    )
    parser.add_argument("--schema-id", type=int, help="LSST schema id to write with (default varstream's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_reader_arguments(parser)


def add_sink_and_pace_arguments(parser: argparse.ArgumentParser, clock: str) -> None:
    """Where alerts go (`make_sink`) and how fast (`make_pace`), for replay and publish; `clock`
    names whose time --speed scales ("archive", "alert")."""
    sink = parser.add_argument_group("sink (one of)")
    sink.add_argument("--bootstrap", help="Kafka bootstrap servers host:port")
    sink.add_argument("--topic", help="Kafka topic to produce to")
    sink.add_argument(
        "--to-folder",
        nargs="?",
        const="",
        type=str,
        metavar="DIR",
        help="write Avro files (default OUT/alerts)",
    )
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, help=f"{clock} seconds per wall second (default 1: real time)")
    pace.add_argument("--rate", type=float, help="alerts per second")
    pace.add_argument("--as-fast-as-possible", action="store_true", help="no pacing")


def parse_time_range(text: str | None) -> tuple[float, float] | None:
    from broker.errors import ConfigError

    if text is None:
        return None
    try:
        start, end = (float(part) for part in text.split(":"))
    except ValueError:
        raise ConfigError(f"--time-range must be MJD0:MJD1, got {text!r}") from None
    if end < start:
        raise ConfigError(f"--time-range ends before it starts: {text!r}")
    return start, end


def parse_band_map(text: str | None) -> dict[str, str] | None:
    from broker.errors import ConfigError
    from broker.offline.replay import DEFAULT_BAND_MAP

    if text is None:
        return None
    band_map = dict(DEFAULT_BAND_MAP)
    for pair in text.split(","):
        archive_band, sep, survey_band = pair.partition("=")
        if not sep or not archive_band.strip() or not survey_band.strip():
            raise ConfigError(f"--band-map entries must be ARCHIVE=SURVEY, got {pair!r}")
        band_map[archive_band.strip()] = survey_band.strip()
    return band_map


def read_object_ids(path: Path | None) -> frozenset[str] | None:
    """Archive ids from a file: one per line, or a CSV whose header has object_id or archive_id."""
    from broker.errors import ConfigError

    if path is None:
        return None
    try:
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise ConfigError(f"cannot read --objects {path}: {exc}") from exc
    header = next(csv.reader(lines[:1]), [])
    column = next((c for c in ("object_id", "archive_id") if c in header), None)
    ids = [row[column].strip() for row in csv.DictReader(lines)] if column else lines
    if not ids:
        raise ConfigError(f"--objects {path} lists no object ids")
    return frozenset(ids)


def make_sink(args: argparse.Namespace):
    from broker.errors import ConfigError
    from broker.kafka_io import KafkaSink
    from broker.offline.replay import FolderSink

    to_kafka = args.bootstrap is not None or args.topic is not None
    if to_kafka == (args.to_folder is not None):
        raise ConfigError("give either --bootstrap and --topic, or --to-folder")
    if to_kafka:
        if not (args.bootstrap and args.topic):
            raise ConfigError("a Kafka sink needs both --bootstrap and --topic")
        return KafkaSink(args.bootstrap, args.topic).connect(), f"kafka:{args.bootstrap}/{args.topic}"
    folder = Path(args.to_folder) if args.to_folder else args.out / "alerts"
    return FolderSink(folder), f"folder:{folder}"


def make_pace(args: argparse.Namespace):
    from broker.offline.replay import Pace

    if args.as_fast_as_possible:
        return Pace.as_fast_as_possible()
    if args.rate is not None:
        return Pace.at_rate(args.rate)
    return Pace.real_time(args.speed if args.speed is not None else 1.0)


def write_bad_rows(path: Path, archives) -> int:
    rows = [row for archive in archives for row in archive.report.bad_rows]
    if rows:
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", "line", "reason"])
            writer.writerows([row.file, row.line, row.reason] for row in rows)
    return len(rows)


def main(args: argparse.Namespace) -> int:
    from broker.offline.archives.options import open_archives, reader_options
    from broker.offline.replay import Selection, replay

    archives = open_archives(args.archives, reader_options(args))
    selection = Selection(
        object_ids=read_object_ids(args.objects),
        classes=tuple(c.strip() for c in args.classes.split(",")) if args.classes else None,
        limit=args.limit,
        seed=args.seed,
        max_points=args.max_points,
        time_range=parse_time_range(args.time_range),
    )
    pace = make_pace(args)
    args.out.mkdir(parents=True, exist_ok=True)
    sink, sink_name = make_sink(args)
    try:
        stats = replay(
            itertools.chain.from_iterable(archives),
            sink,
            args.flavour,
            pace,
            selection=selection,
            run_dir=args.out,
            band_map=parse_band_map(args.band_map),
            history_days=args.history_days,
            schema_id=args.schema_id,
            progress=not args.no_progress and sys.stderr.isatty(),
        )
    finally:
        sink.close()
    n_bad = write_bad_rows(args.out / "bad_rows.csv", archives)
    for archive in archives:
        print(f"{archive.spec}: {archive.report.summary()}", file=sys.stderr)
        for row in archive.report.bad_rows[:20]:
            print(f"  {row}", file=sys.stderr)
    summary = {
        "archives": args.archives,
        "sink": sink_name,
        "pace": vars(pace),
        "selection": {**vars(selection), "object_ids": len(selection.object_ids or ()) or None},
        "bad_rows": n_bad,
        "read_reports": {a.spec: a.report.summary() for a in archives},
        **stats.as_dict(),
    }
    (args.out / "replay.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    print(
        f"replayed {stats.n_alerts} {args.flavour} alerts of {stats.n_objects} objects to {sink_name} "
        f"in {stats.elapsed_s:.1f} s ({stats.alerts_per_s:.0f} alerts/s); truth: {stats.truth_path}"
    )
    return 0
