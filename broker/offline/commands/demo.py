"""Run the whole stream on a local Apache Kafka with the default models, and report what happened.

Starts Kafka on 127.0.0.1 (free ports) and replays labelled light curves as alerts: --data is any archive
`varstream replay` reads, with the same reader options, less the objects the bundle was trained or tuned
on (default: CRTS in ../shared/data; a synthetic PELS-VAE stream when there is no archive). Runs
`varstream run` as a separate process, waits until every alert is answered, stops Kafka, and writes
OUT/demo-report.json, OUT/annotations.jsonl and (labelled data) OUT/metrics.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from broker.offline.archives.options import add_reader_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("OUT"), help="output folder (default: OUT)")
    parser.add_argument(
        "--data",
        metavar="FORMAT:PATH",
        help="any archive `varstream replay` reads, or 'synthetic' (PELS-VAE); "
        "default: CRTS in ../shared/data, else synthetic",
    )
    parser.add_argument("--limit", type=int, default=60, help="objects to replay (default: 60)")
    parser.add_argument(
        "--max-points", type=int, default=120, help="first N detections of each object (default: 120; 0: all)"
    )
    parser.add_argument(
        "--flavour", choices=("ztf", "lsst"), default="ztf", help="alert format (default: ztf)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=100.0,
        help="replay rate in alerts/s (default: 100, below a 2-core CPU plugin's capacity; 0: no pacing)",
    )
    parser.add_argument("--bundle", help="classifier bundle (default: the shipped iTCN)")
    parser.add_argument("--novelty-bundle", help="novelty bundle (default: the shipped AE-GMM; 'none')")
    parser.add_argument("--metrics-port", type=int, default=0, help="expose the plugin's /metrics here")
    parser.add_argument("--seed", type=int, default=0, help="object sample seed")
    add_reader_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from broker.offline.archives.options import reader_options
    from broker.offline.demo import DemoOptions, run_demo

    report = run_demo(
        DemoOptions(
            out=args.out,
            data=args.data,
            limit=args.limit,
            max_points=args.max_points or None,
            flavour=args.flavour,
            rate=args.rate or None,
            bundle=args.bundle,
            novelty_bundle=args.novelty_bundle,
            metrics_port=args.metrics_port,
            seed=args.seed,
            reader_options=reader_options(args),
        )
    )
    return 0 if report["accounting_holds"] else 1
