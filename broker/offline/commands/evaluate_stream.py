"""Score a running plugin from its annotations topic against a replay's truth.csv.

Reads the topic from the beginning to its current end offsets, takes each object's last annotation and
writes to --out the same metrics.json as `varstream evaluate` (accuracy, balanced accuracy, per class,
novelty for classes the model does not know, period recovery), plus latency_seconds (p50/p95/p99 of
annotated_at_ms - alert_timestamp_ms) and counts (objects in truth / annotated, duplicates by alertId).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers host:port")
    parser.add_argument("--topic", required=True, help="annotations topic")
    parser.add_argument("--truth", required=True, type=Path, help="truth.csv written by `varstream replay`")
    parser.add_argument("--out", required=True, type=Path, help="folder for metrics.json and plots")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds without progress before giving up (default 30)"
    )


def main(args: argparse.Namespace) -> int:
    from broker.offline.evaluate_stream import evaluate_stream

    metrics = evaluate_stream(args.bootstrap, args.topic, args.truth, args.out, args.timeout)
    counts, latency = metrics["counts"], metrics["latency_seconds"]
    print(
        json.dumps(
            {
                "accuracy": metrics["accuracy"],
                "balanced_accuracy": metrics["balanced_accuracy"],
                "objects_annotated": counts["objects_annotated"],
                "objects_in_truth": counts["objects_in_truth"],
                "duplicate_annotations": counts["duplicate_annotations"],
                "latency_p50_s": latency["p50"],
                "latency_p99_s": latency["p99"],
                "metrics": str(args.out / "metrics.json"),
            },
            indent=1,
        )
    )
    return 0
