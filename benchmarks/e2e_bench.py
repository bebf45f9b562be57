"""End-to-end throughput and latency through the real Kafka, with and without micro-batching.

The same CRTS replay (as fast as possible, started once the plugin has joined its group) is answered by
`varstream run` in a separate process, once per arm; arms differ only in kafka.batch_size. Reported side by
side, with the speed-up as a ratio, because absolute numbers on a shared 2-core machine mean little.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from broker.codecs import write_schema_folder
from broker.kafka_io import KafkaSink
from broker.offline.demo import DEFAULT_CRTS, start_plugin, wait_until_consuming
from broker.offline.local_kafka import LocalKafka
from broker.offline.replay import Selection, replay
from models.data import read_crts

ARMS = {"batch_1": 1, "batch_500": 500}
N_OBJECTS = 40
MAX_POINTS = 100


def _config(
    path: Path, bootstrap: str, src: str, out: str, group: str, batch_size: int, flavour: str
) -> Path:
    schema = f'schema_dirs = ["{path.parent / "schemas"}"]' if flavour == "lsst" else ""
    path.write_text(
        f"""[kafka]
bootstrap_servers = "{bootstrap}"
group_id = "{group}"
input_topics = ["{src}"]
output_topic = "{out}"
dead_letter_topic = "{out}-dlq"
batch_size = {batch_size}
batch_timeout_s = 0.2
{schema}
[store]
path = "{path.with_suffix(".sqlite")}"
[inference]
device = "auto"
[metrics]
port = 0
[run]
idle_exit_s = 5.0
summary_path = "{path.with_suffix(".summary.json")}"
"""
    )
    for stale in path.parent.glob(f"{path.stem}.*sqlite*"):  # one file per partition (+ -wal/-shm)
        stale.unlink(missing_ok=True)
    return path


def _arm(kafka: LocalKafka, objects, name: str, batch_size: int, flavour: str, scratch: Path) -> dict:
    src, out = f"bench-{name}-{flavour}", f"bench-{name}-{flavour}-out"
    kafka.create_topics([src, out, out + "-dlq"])
    cfg = _config(
        scratch / f"{name}-{flavour}.toml",
        kafka.bootstrap_servers,
        src,
        out,
        f"g-{name}-{flavour}",
        batch_size,
        flavour,
    )
    if flavour == "lsst":  # the plugin must be able to resolve the replay's schema id from the start
        write_schema_folder(scratch / "schemas")
    plugin = start_plugin(cfg, cfg.with_suffix(".log"))
    try:
        wait_until_consuming(kafka.bootstrap_servers, f"g-{name}-{flavour}", plugin)
        sink = KafkaSink(kafka.bootstrap_servers, src)
        started = time.monotonic()
        stats = replay(objects, sink, flavour, selection=Selection(max_points=MAX_POINTS), run_dir=scratch)
        sink.close()
        del sink
        code = plugin.wait(3600)
    finally:
        if plugin.poll() is None:
            plugin.kill()
    if code != 0:
        raise RuntimeError(f"plugin exited {code}: {cfg.with_suffix('.log').read_text()[-2000:]}")
    summary = json.loads(cfg.with_suffix(".summary.json").read_text())
    lat = np.asarray(summary["latencies_s"])
    return {
        "flavour": flavour,
        "batch_size": batch_size,
        "alerts": summary["alerts_in"],
        "replayed": stats.n_alerts,
        "annotated": summary["annotated"],
        "wall_s": time.monotonic() - started,
        "alerts_per_s": summary["throughput_alerts_per_s"],
        "latency_p50_s": float(np.percentile(lat, 50)) if len(lat) else None,
        "latency_p99_s": float(np.percentile(lat, 99)) if len(lat) else None,
    }


def run(out_dir: str | Path, kafka: LocalKafka, flavours: tuple[str, ...] = ("ztf", "lsst")) -> dict:
    out_dir = Path(out_dir)
    scratch = out_dir / "e2e-scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    objects = read_crts(DEFAULT_CRTS)
    rng = np.random.default_rng(0)
    objects = [objects[i] for i in sorted(rng.choice(len(objects), N_OBJECTS, replace=False))]
    rows = []
    for flavour in flavours:
        for name, batch_size in ARMS.items():
            rows.append(_arm(kafka, objects, name, batch_size, flavour, scratch) | {"arm": name})
    ratios = {}
    for flavour in flavours:
        by_arm = {r["arm"]: r for r in rows if r["flavour"] == flavour}
        ratios[f"{flavour}_micro_batching_speedup"] = by_arm["batch_500"]["alerts_per_s"] / max(
            by_arm["batch_1"]["alerts_per_s"], 1e-9
        )
    result = {"workload": {"objects": N_OBJECTS, "max_points": MAX_POINTS}, "rows": rows, "ratios": ratios}
    (out_dir / "e2e_bench.json").write_text(json.dumps(result, indent=2))
    print(
        f"\nEnd to end through Kafka ({N_OBJECTS} CRTS objects x {MAX_POINTS} points, replay at full speed)"
    )
    print(f"{'flavour':8} {'arm':10} {'alerts':>7} {'alerts/s':>9} {'p50 s':>7} {'p99 s':>7}")
    for r in rows:
        print(
            f"{r['flavour']:8} {r['arm']:10} {r['alerts']:7d} {r['alerts_per_s']:9.1f} "
            f"{r['latency_p50_s'] or float('nan'):7.2f} {r['latency_p99_s'] or float('nan'):7.2f}"
        )
    for name, value in ratios.items():
        print(f"{name}: {value:.1f}x")
    return result
