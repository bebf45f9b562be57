"""Replay throughput on one core: alerts/s built, encoded and sent as fast as possible, per flavour and sink.

Input: real CRTS light curves (a seeded sample, ~300 detections each) replayed as ZTF-like alerts (30 days
of history) and LSST-like alerts (365 days). Sinks: none (build + encode only, the ceiling), a folder of
Avro files, and a Kafka topic when a bootstrap server is given (or `--local-kafka` starts the project's
single-node Apache Kafka). The process is pinned to one CPU for the measurement (librdkafka's threads,
created after pinning, share it).

Run: ``.venv/bin/python -m benchmarks.replay_bench [out_dir] [--bootstrap HOST:PORT | --local-kafka]``
(writes out_dir/replay_bench.json).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from broker.kafka_io import KafkaSink
from broker.offline.archives.base import open_archive
from broker.offline.replay import FolderSink, Pace, Selection, replay, select_objects

CRTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "crts_kvmu"
OBJECTS = {"ztf": 12, "lsst": 5}  # ~3,600 and ~1,500 alerts: a few seconds per case on one core


class NullSink:
    """Discards alerts: measures building and encoding alone."""

    def send(self, key: str, value: bytes) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _pin_to_one_core() -> set[int] | None:
    if not hasattr(os, "sched_getaffinity"):
        return None
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    return before


def _create_topic(bootstrap: str) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"varstream-replay-bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the future
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    return topic


def _case(objects, flavour: str, sink_name: str, bootstrap: str | None, scratch: Path) -> dict:
    if sink_name == "none":
        sink = NullSink()
    elif sink_name == "folder":
        sink = FolderSink(scratch / f"{flavour}-alerts")
    else:
        sink = KafkaSink(bootstrap, _create_topic(bootstrap))
    started = time.perf_counter()
    stats = replay(objects, sink, flavour, Pace.as_fast_as_possible())
    wall = time.perf_counter() - started
    sink.close()
    return {
        "flavour": flavour,
        "sink": sink_name,
        "objects": stats.n_objects,
        "alerts": stats.n_alerts,
        "alerts_per_s": round(stats.alerts_per_s, 1),
        "mean_alert_bytes": round(stats.n_bytes / stats.n_alerts),
        "mb_per_s": round(stats.n_bytes / stats.elapsed_s / 1e6, 2),
        "wall_s": round(wall, 2),
    }


def run(out_dir: str | Path, bootstrap: str | None = None) -> dict:
    """Measure every (flavour, sink) case; Kafka cases only with a bootstrap. Writes replay_bench.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    objects = list(open_archive(f"crts:{CRTS}"))
    previous = _pin_to_one_core()
    scratch = Path(tempfile.mkdtemp(prefix="replay-bench-"))
    cases = []
    try:
        for flavour in ("ztf", "lsst"):
            chosen = select_objects(objects, Selection(limit=OBJECTS[flavour], seed=0))
            for sink_name in ("none", "folder", *(["kafka"] if bootstrap else [])):
                cases.append(_case(chosen, flavour, sink_name, bootstrap, scratch))
                print(json.dumps(cases[-1]), file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if previous is not None:
            os.sched_setaffinity(0, previous)
    results = {
        "benchmark": "replay",
        "cores": 1 if previous is not None else os.cpu_count(),
        "data": f"CRTS, seeded samples of {OBJECTS} objects",
        "kafka": bootstrap or "not measured (no bootstrap given)",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cases": cases,
    }
    (out / "replay_bench.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="replay throughput on one core")
    parser.add_argument("out_dir", nargs="?", default="OUT/bench")
    kafka = parser.add_mutually_exclusive_group()
    kafka.add_argument("--bootstrap", help="Kafka bootstrap servers for the Kafka cases")
    kafka.add_argument("--local-kafka", action="store_true", help="start the project's local Apache Kafka")
    args = parser.parse_args(argv)
    broker, bootstrap = None, args.bootstrap
    if args.local_kafka:
        from broker.offline.kafka_node import find_kafka_libs
        from broker.offline.local_kafka import LocalKafka

        broker = LocalKafka(libs_dir=find_kafka_libs())
        broker.start()
        bootstrap = broker.bootstrap_servers
    try:
        print(json.dumps(run(args.out_dir, bootstrap), indent=2))
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    main()
