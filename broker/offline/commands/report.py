"""Plot a run: end-to-end latency, throughput, class mix and novelty energies, as PNGs plus a JSON of numbers.

Reads the annotation records of a run from its folder (`--run DIR`, the annotations.jsonl that
`varstream demo` writes) or from the output topic (`--bootstrap B --topic T`, read from the beginning to
the current end without joining a consumer group). The novelty thresholds drawn are those of the novelty
bundle the records name (or `--novelty-bundle DIR`).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--run", metavar="DIR", help="run folder holding annotations.jsonl (or the file itself)"
    )
    source.add_argument(
        "--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers to read --topic from"
    )
    parser.add_argument("--topic", help="annotation topic (with --bootstrap)")
    parser.add_argument("--out", metavar="DIR", required=True, help="folder for the PNGs and report.json")
    parser.add_argument(
        "--novelty-bundle", metavar="DIR", help="novelty bundle whose energy thresholds to draw"
    )
    parser.add_argument(
        "--kafka-timeout", type=float, default=60.0, metavar="S", help="give up reading the topic after S s"
    )


def main(args: argparse.Namespace) -> int:
    from broker.errors import ConfigError
    from broker.offline.report import (
        PLOT_FILES,
        REPORT_FILE,
        build_report,
        read_annotations_file,
        read_annotations_topic,
    )

    undecodable = 0
    if args.run:
        records = read_annotations_file(args.run)
        source = {"kind": "file", "path": str(args.run)}
    else:
        if not args.topic:
            raise ConfigError("--bootstrap needs --topic (the annotation topic to read)")
        records, undecodable = read_annotations_topic(args.bootstrap, args.topic, args.kafka_timeout)
        source = {
            "kind": "kafka",
            "bootstrap": args.bootstrap,
            "topic": args.topic,
            "undecodable": undecodable,
        }
    summary = build_report(records, args.out, args.novelty_bundle, source)
    latency = summary["latency_s"]
    print(
        f"{summary['n_annotations']} annotations of {summary['n_alerts']} alerts; latency p50 "
        f"{latency['p50']:.2f} s, p99 {latency['p99']:.2f} s, {latency['within_budget_fraction']:.1%} within "
        f"{latency['budget']:.0f} s; {summary['novelty']['n_novel']} novel"
        + (f"; {undecodable} undecodable messages skipped" if undecodable else "")
    )
    print(f"wrote {', '.join((*PLOT_FILES, REPORT_FILE))} to {args.out}")
    return 0
