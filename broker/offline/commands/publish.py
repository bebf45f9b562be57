"""Publish real alert files onto a topic as the surveys published them (keyed by object id, paced).

PATH is an alert file, a folder of them, or a tar archive (e.g. a night of ZTF's public archive,
ztf_public_YYYYMMDD.tar.gz); ZTF alerts are Avro containers, Rubin's Confluent wire-format messages. Each
alert's bytes go out unchanged; a multi-alert container is cut into one-alert containers. --order time
(default) sends them by the alert's time, --order archive as stored (one pass, what a nightly tarball
needs). Pace as `varstream replay`: real time (--speed), --rate, or --as-fast-as-possible. Into --out go
publish.json (counts, pace, per survey), objects.csv (objectId, survey, alerts, first/last MJD) and
unreadable.csv (files not sent, with the reason). The archive replay (`varstream replay`) makes alerts
from light curves instead.
"""

from __future__ import annotations

import argparse
import csv
import functools
import itertools
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from broker.offline.commands.replay import add_sink_and_pace_arguments

    parser.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="alert file, folder or tar archive"
    )
    parser.add_argument(
        "--out", required=True, type=Path, help="run folder for publish.json, objects.csv, ..."
    )
    parser.add_argument(
        "--order", choices=("time", "archive"), default="time", help="by alert time (default) or as stored"
    )
    add_sink_and_pace_arguments(parser, "alert")
    parser.add_argument("--objects", type=Path, help="publish only these object ids (file: one per line)")
    parser.add_argument("--time-range", metavar="MJD0:MJD1", help="only alerts in this MJD range")
    parser.add_argument("--limit", type=int, help="stop after N alerts")
    parser.add_argument(
        "--schema-dir", action="append", default=[], type=Path, help="more wire-format schemas (<id>.avsc)"
    )
    parser.add_argument("--schema-registry", help="Confluent Schema Registry URL for wire-format schema ids")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def progress_bar(enabled: bool):
    """A tqdm bar, or None in the lean plugin install (no tqdm there; publishing needs nothing of [train])."""
    if enabled:
        try:
            from tqdm import tqdm

            return tqdm(unit="alert", mininterval=0.5)
        except ModuleNotFoundError:
            pass
    return None


def selected(messages: Iterator, ids: frozenset[str] | None, time_range: tuple[float, float] | None):
    """The messages of the wanted objects and times."""
    for m in messages:
        if (ids is None or m.key in ids) and (time_range is None or time_range[0] <= m.mjd <= time_range[1]):
            yield m


def main(args: argparse.Namespace) -> int:
    from broker.codecs import SchemaResolver
    from broker.errors import ConfigError
    from broker.offline.alert_files import ReadLog, read_alerts
    from broker.offline.commands.replay import make_pace, make_sink, parse_time_range, read_object_ids
    from broker.offline.replay import Pacer, warn_if_slow

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1 alert, got {args.limit}")
    ids = read_object_ids(args.objects)
    time_range = parse_time_range(args.time_range)
    resolver = SchemaResolver(registry_url=args.schema_registry, folders=args.schema_dir)
    pace = make_pace(args)
    args.out.mkdir(parents=True, exist_ok=True)
    sink, sink_name = make_sink(args)
    log, pacer = ReadLog(), Pacer(pace)
    span = functools.partial(warn_if_slow, pace)  # real time over years: say how long it takes
    found = read_alerts(args.paths, args.order, resolver, log, on_sorted=span)  # one order over every path
    stream = itertools.islice(selected(found, ids, time_range), args.limit)  # limit None: all
    sent, n_bytes, by_survey = 0, 0, Counter()
    objects: dict[tuple[str, str], list] = {}  # (survey, objectId) -> [alerts, first mjd, last mjd]
    started = time.monotonic()
    bar = progress_bar(not args.no_progress and sys.stderr.isatty())
    try:
        for message in stream:
            pacer.wait(sent, message.mjd)
            sink.send(message.key, message.value)
            sent, n_bytes = sent + 1, n_bytes + len(message.value)
            by_survey[message.survey] += 1
            seen = objects.setdefault((message.survey, message.key), [0, message.mjd, message.mjd])
            seen[0], seen[1], seen[2] = seen[0] + 1, min(seen[1], message.mjd), max(seen[2], message.mjd)
            if bar is not None:
                bar.update(1)
        sink.flush()
    finally:
        sink.close()
        if bar is not None:
            bar.close()
    elapsed = time.monotonic() - started

    with open(args.out / "objects.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["objectId", "survey", "alerts", "first_mjd", "last_mjd"])
        for (survey, key), (count, first, last) in sorted(objects.items()):
            writer.writerow([key, survey, count, repr(first), repr(last)])
    with open(args.out / "unreadable.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "reason"])
        writer.writerows([u.source, u.reason] for u in log.unreadable)
    summary = {
        "paths": [str(p) for p in args.paths],
        "sink": sink_name,
        "order": args.order,
        "pace": vars(pace),
        "files_read": log.files,
        "alerts_found": log.alerts,
        "alerts_sent": sent,
        "bytes_sent": n_bytes,
        "by_survey": dict(by_survey),
        "objects": len(objects),
        "unreadable_files": len(log.unreadable),
        "elapsed_s": elapsed,
        "alerts_per_s": sent / elapsed if elapsed > 0 else 0.0,
    }
    (args.out / "publish.json").write_text(json.dumps(summary, indent=1) + "\n")
    for u in log.unreadable[:20]:
        print(f"not sent: {u.source}: {u.reason}", file=sys.stderr)
    if len(log.unreadable) > 20:
        print(f"... {len(log.unreadable) - 20} more in {args.out / 'unreadable.csv'}", file=sys.stderr)
    print(
        f"published {sent} alerts of {len(objects)} objects ({dict(by_survey)}) to {sink_name} in "
        f"{elapsed:.1f} s; {len(log.unreadable)} of {log.files} files not alerts (unreadable.csv)"
    )
    return 0
