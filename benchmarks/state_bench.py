"""Sizing of the per-object state: a store partition of N objects x P points, and its changelog.

Measures, on one store partition (one SQLite file); times are CPU seconds of this process (SQLite runs
in it), so a busy shared machine does not distort them, except the Kafka restore, which is wall time:
- build: N objects written through the store's own transactions (objects/s);
- disk (SQLite file + WAL), changelog bytes (keys + values as produced, and lz4-compressed as sent),
  peak RSS of the process;
- merge throughput at that size: ZTF-like alerts (30-day history repeated, one new point) on random
  objects, in batches of 500 through merge -> prepare -> commit (alerts/s), and the same for histories of
  other lengths, to show the cost does not grow with history length;
- restore: applying the changelog records to an empty partition, seconds per 1e5 objects; with `--kafka`
  the records also go through a real local Kafka topic and `broker.changelog.read_partition`;
- eviction (run first, so RSS is the store's own): 2x max_objects objects through a bounded partition:
  objects, file size and RSS stay bounded.

`python -m benchmarks.state_bench --objects 100000` (a few minutes here); numbers at 1e6 are an
extrapolation, labelled so. Writes state_bench.json into --out.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import lz4.frame
import numpy as np

from broker.config import StoreConfig
from broker.store import StorePartition
from models.lightcurve import LightCurve

MS = 1 / 86_400_000
BATCH = 500


def rss_mb() -> float:
    """Peak resident set size of this process [MB]."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident set size now [MB] (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 1e6


def synthetic(rng: np.random.Generator, n_points: int, start: float = 60000.0) -> LightCurve:
    """A two-band light curve: one detection every ~1.5 d, magnitudes around 17."""
    mjd = start + np.cumsum(rng.uniform(0.5, 2.5, n_points))
    return LightCurve.from_arrays(
        mjd, 17 + 0.3 * np.sin(mjd / 0.71) + rng.normal(0, 0.03, n_points), np.full(n_points, 0.03),
        rng.choice(np.array(["g", "r"], dtype=object), n_points),
    )  # fmt: skip


def build(part: StorePartition, n_objects: int, n_points: int, seed: int = 0) -> tuple[float, list]:
    """N objects through the store's transactions; returns (seconds, changelog records)."""
    rng = np.random.default_rng(seed)
    base = synthetic(rng, n_points)
    records: list = []
    started = time.process_time()
    for lo in range(0, n_objects, BATCH):
        txn = part.begin()
        for i in range(lo, min(n_objects, lo + BATCH)):
            jitter = LightCurve(base.mjd + (i % 97) * MS * 7, base.mag, base.magerr, base.band)
            txn.merge(f"ZTF{i:012d}", jitter)
        records += txn.prepare()
        txn.commit(input_offset=lo + BATCH, changelog_offset=len(records))
    return time.process_time() - started, records


def merge_rate(part: StorePartition, n_objects: int, n_alerts: int, history: int, seed: int = 1) -> float:
    """ZTF-like alerts on random stored objects: the last `history` stored points plus one new point."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, n_objects, n_alerts)
    txn = part.begin()
    lcs = []
    for i in ids[: min(2000, n_alerts)]:
        lc = txn.lightcurve(f"ZTF{i:012d}")
        lcs.append(lc)
    txn.rollback()
    started = time.process_time()
    for lo in range(0, n_alerts, BATCH):
        txn = part.begin()
        for k in range(lo, min(n_alerts, lo + BATCH)):
            obj = f"ZTF{ids[k]:012d}"
            lc = lcs[k % len(lcs)]
            new_t = lc.mjd[-1] + 1.0 + k * 1e-3
            tail = slice(max(0, len(lc) - history), len(lc))
            alert = LightCurve(
                np.append(lc.mjd[tail], new_t), np.append(lc.mag[tail], 17.0),
                np.append(lc.magerr[tail], 0.03), np.append(lc.band[tail], "g"),
            )  # fmt: skip
            txn.merge(obj, alert)
        txn.prepare()
        txn.commit()
    return n_alerts / (time.process_time() - started)


def restore_local(records: list, folder: Path, config: StoreConfig) -> float:
    part = StorePartition(folder / "restored.sqlite", config)
    started = time.process_time()
    for lo in range(0, len(records), 2000):
        part.apply_changelog(records[lo : lo + 2000], lo + 2000)
    seconds = time.process_time() - started
    part.close()
    return seconds


def restore_kafka(records: list, folder: Path, config: StoreConfig) -> dict:
    """Records produced to a compacted topic on a local Kafka, then restored with read_partition."""
    from confluent_kafka import Producer

    from broker.changelog import read_partition
    from broker.offline.kafka_node import find_kafka_libs
    from broker.offline.local_kafka import LocalKafka
    from broker.restore import RESTORE_SLICE_S

    with LocalKafka(libs_dir=find_kafka_libs()) as kafka:
        topic = "bench-changelog"
        kafka.create_topics([topic], partitions=1, config={"cleanup.policy": "compact"})
        producer = Producer(
            {"bootstrap.servers": kafka.bootstrap_servers, "compression.type": "lz4", "linger.ms": 20,
             "enable.idempotence": True, "acks": "all"}
        )  # fmt: skip
        started = time.perf_counter()
        for key, value in records:
            while True:
                try:
                    producer.produce(topic, value=value, key=key, partition=0)
                    break
                except BufferError:
                    producer.poll(0.1)
        producer.flush(120)
        produce_s = time.perf_counter() - started
        part = StorePartition(folder / "kafka-restored.sqlite", config)
        started = time.perf_counter()
        n, _ = read_partition(kafka.bootstrap_servers, topic, 0, 0, part.apply_changelog, False, 60.0)
        restore_s = time.perf_counter() - started
        part.close()
        # as the plugin restores: slices of RESTORE_SLICE_S, each a new reader from the applied offset
        part = StorePartition(folder / "kafka-sliced.sqlite", config)
        started, slices, done = time.perf_counter(), 0, False
        while not done:
            deadline = time.monotonic() + RESTORE_SLICE_S
            _, done = read_partition(
                kafka.bootstrap_servers, topic, 0, max(part.changelog_offset, 0), part.apply_changelog,
                False, 60.0, deadline=deadline,
            )  # fmt: skip
            slices += 1
        sliced_s = time.perf_counter() - started
        assert part.count() == n
        part.close()
    return {
        "records": n, "produce_s": produce_s, "restore_s": restore_s, "sliced_restore_s": sliced_s,
        "slices": slices, "sliced_over_one_call": sliced_s / restore_s,
    }  # fmt: skip


def eviction(folder: Path, max_objects: int, n_points: int) -> dict:
    """2x max_objects objects through a bounded partition, sampled after each max_objects/4."""
    config = StoreConfig(path=str(folder / "b.sqlite"), max_objects=max_objects, cache_objects=2000)
    part = StorePartition(folder / "bounded.sqlite", config)
    rng = np.random.default_rng(2)
    base = synthetic(rng, n_points)
    samples, tombstones = [], 0
    for lo in range(0, 2 * max_objects, BATCH):
        txn = part.begin()
        for i in range(lo, lo + BATCH):
            txn.merge(f"E{i:012d}", base)
        tombstones += sum(v is None for _k, v in txn.prepare())
        txn.commit()
        if (lo + BATCH) % (max_objects // 4) == 0:
            mb = part.size_bytes() / 1e6
            samples.append(
                {"written": lo + BATCH, "objects": part.count(), "disk_mb": mb, "rss_mb": rss_mb()}
            )
    part.close()
    return {"max_objects": max_objects, "tombstones": tombstones, "samples": samples}


def run(out_dir: str | Path, n_objects: int = 100_000, n_points: int = 300, kafka: bool = False) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict = {"objects": n_objects, "points_per_object": n_points}
    with tempfile.TemporaryDirectory(prefix="state-bench-") as tmp:
        folder = Path(tmp)
        # First, while the process holds nothing else: RSS then shows the store's own memory.
        result["rss_mb_at_start"] = current_rss_mb()
        result["eviction"] = eviction(folder, max_objects=max(1000, n_objects // 10), n_points=n_points)
        config = StoreConfig(path=str(folder / "s.sqlite"), max_objects=10 * n_objects)
        part = StorePartition(folder / "p.sqlite", config)
        seconds, records = build(part, n_objects, n_points)
        value_bytes = sum(len(v) for _k, v in records)
        key_bytes = sum(len(k) for k, _v in records)
        sample = [v for _k, v in records[:2000]]  # one record at a time: no cross-object redundancy
        lz4_ratio = sum(map(len, sample)) / sum(len(lz4.frame.compress(v)) for v in sample)
        result["build"] = {"seconds": seconds, "objects_per_s": n_objects / seconds}
        result["disk_bytes"] = part.size_bytes()
        result["disk_bytes_per_object"] = part.size_bytes() / n_objects
        result["changelog_bytes"] = key_bytes + value_bytes
        result["changelog_bytes_per_object"] = (key_bytes + value_bytes) / n_objects
        result["changelog_lz4_ratio"] = lz4_ratio
        result["rss_mb_peak_after_build"] = rss_mb()
        result["merge_alerts_per_s"] = {
            f"history_{h}": merge_rate(part, n_objects, 20_000, h) for h in (10, 30, 300)
        }
        part.close()
        local_s = restore_local(records, folder, config)
        result["restore_local_s"] = local_s
        result["restore_local_s_per_1e5_objects"] = local_s * 1e5 / n_objects
        if kafka:
            k = restore_kafka(records, folder, config)
            k["restore_s_per_1e5_objects"] = k["restore_s"] * 1e5 / n_objects
            result["restore_kafka"] = k
        del records
        result["rss_mb_peak"] = rss_mb()
    scale = 1e6 / n_objects
    result["extrapolated_to_1e6_objects"] = {
        "note": f"linear extrapolation from {n_objects} objects (not measured)",
        "disk_gb": result["disk_bytes"] * scale / 1e9,
        "changelog_gb_uncompressed": result["changelog_bytes"] * scale / 1e9,
        "restore_local_s": local_s * scale,
    }
    (out_dir / "state_bench.json").write_text(json.dumps(result, indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=300)
    parser.add_argument("--kafka", action="store_true", help="also restore through a real local Kafka")
    parser.add_argument("--out", default="OUT/bench")
    args = parser.parse_args()
    print(json.dumps(run(args.out, args.objects, args.points, args.kafka), indent=1))


if __name__ == "__main__":
    main()
