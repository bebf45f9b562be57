"""End to end through the real Kafka: plugin vs its ceiling, a paced latency run, the per-stage table.

Per flavour (ZTF-like 30-day histories, LSST-like 12-month-sized histories; see benchmarks/stream.py):
1. the stream (200 interleaved CRTS objects, their last 30 (ZTF) or 10 (LSST) detections) goes to a topic;
   a warm-up run of the plugin on the warm-up alerts fills a store, copied for the full and paced runs;
2. full run: `varstream run` (separate process, shipped defaults: trigger, bundles, batch size) drains it;
3. ceiling run: the same topic, a new group, `[run] mode = "ceiling"` (consume, decode, commit only);
4. paced run: a fresh topic fed at half the full run's rate while the plugin runs: end-to-end latency.
The plugin's RSS is sampled and its /metrics scraped during every run. `run_long` is the 10-minute memory
run (`run.py --long`). Absolute numbers on a shared 2-core machine are noisy; the ratios carry further.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from benchmarks import stream
from benchmarks.plugin_probe import PluginRun, free_port, plugin_config
from broker.codecs import write_schema_folder
from broker.kafka_io import KafkaSink
from broker.offline.local_kafka import LocalKafka

FLAVOURS = ("ztf", "lsst")
PACED_FRACTION = 0.5  # of the full run's rate
PACED_SECONDS = 40.0  # alerts sent in the paced run: rate x this (at most the whole stream)
LONG_SECONDS = 600.0
LONG_ALERTS_PER_OBJECT = 150  # the long run's stream: at most the last 150 detections of each object


def _produce(kafka: LocalKafka, topic: str, payloads, rate: float | None = None, duration_s=None) -> int:
    sink = KafkaSink(kafka.bootstrap_servers, topic)
    try:
        return stream.send(sink, payloads, rate, duration_s)
    finally:
        sink.close()
        del sink  # its librdkafka handle must not outlive the broker


def _plugin(
    kafka: LocalKafka, scratch: Path, name: str, topic: str, mode: str, schema_dir, store: Path | None = None
) -> PluginRun:
    port = free_port()
    cfg = plugin_config(
        scratch / f"{name}.toml",
        kafka.bootstrap_servers,
        topic,
        f"g-{name}",
        port,
        mode=mode,
        schema_dir=schema_dir,
        store=store,
    )
    return PluginRun(cfg, kafka.bootstrap_servers, f"g-{name}", port)


def _topic(kafka: LocalKafka, name: str) -> str:
    kafka.create_topics([name, f"{name}-out", f"{name}-dlq"])
    return name


def _copy_store(warm: Path, to: Path) -> Path:
    """A copy of the warmed-up store (its file and any siblings such as -wal) for one run."""
    for old in to.parent.glob(to.name + "*"):
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    for part in warm.parent.glob(warm.name + "*"):
        target = to.parent / (to.name + part.name[len(warm.name) :])
        shutil.copytree(part, target) if part.is_dir() else shutil.copy2(part, target)
    return to


def run_flavour(kafka: LocalKafka, objects: list, flavour: str, scratch: Path) -> dict:
    schema_dir = write_schema_folder(scratch / "schemas").parent if flavour == "lsst" else None
    warm_up, payloads, stats = stream.build_streams(objects, flavour)
    print(
        f"  {flavour}: {stats.alerts} alerts of {stats.objects} objects, {stats.mean_history_points:.0f} "
        f"history points and {stats.mean_kb:.1f} KB per alert (built in {stats.build_s:.0f} s)",
        flush=True,
    )
    warm_topic = _topic(kafka, f"bench-{flavour}-warm-up")
    _produce(kafka, warm_topic, warm_up)
    warm = _plugin(kafka, scratch, f"{flavour}-warm-up", warm_topic, "full", schema_dir).start().finish()
    warm_store = scratch / f"{flavour}-warm-up.sqlite"
    topic = _topic(kafka, f"bench-{flavour}")
    _produce(kafka, topic, payloads)
    runs = {}
    for mode in ("full", "ceiling"):
        store = _copy_store(warm_store, scratch / f"{flavour}-{mode}.store") if mode == "full" else None
        plugin = _plugin(kafka, scratch, f"{flavour}-{mode}", topic, mode, schema_dir, store).start()
        runs[mode] = plugin.finish()
        print(f"  {flavour} {mode}: {runs[mode]['alerts_per_s']:.0f} alerts/s", flush=True)
    rate = max(1.0, PACED_FRACTION * runs["full"]["alerts_per_s"])
    n_paced = min(len(payloads), int(rate * PACED_SECONDS))
    paced_topic = _topic(kafka, f"bench-{flavour}-paced")
    store = _copy_store(warm_store, scratch / f"{flavour}-paced.store")
    plugin = _plugin(kafka, scratch, f"{flavour}-paced", paced_topic, "full", schema_dir, store).start()
    started = time.monotonic()
    _produce(kafka, paced_topic, payloads[:n_paced], rate=rate)
    runs["paced"] = plugin.finish() | {"rate_alerts_per_s": rate, "send_s": time.monotonic() - started}
    print(
        f"  {flavour} paced at {rate:.0f}/s: p50 {_s(runs['paced']['latency_p50_s'])}, "
        f"p99 {_s(runs['paced']['latency_p99_s'])}",
        flush=True,
    )
    return {
        "stream": stats.as_dict(),
        "warm_up": {"alerts": warm["alerts"], "annotated": warm["annotated"], "skipped": warm["skipped"]},
        "runs": runs,
        "fraction_of_ceiling": runs["full"]["alerts_per_s"] / max(runs["ceiling"]["alerts_per_s"], 1e-9),
        "overlap": overlap_estimate(runs["full"]),
    }


def _s(seconds: float | None) -> str:
    return "n/a (nothing annotated)" if seconds is None else f"{seconds:.2f} s"


def overlap_estimate(full_run: dict) -> dict:
    """What overlapping inference with the next batch's period search could save, at best.

    Perfect overlap hides the smaller of the two stages behind the larger, so the bound on the saving is
    min(period, infer) / busy time; on a CPU both stages compete for the same cores, so the real gain is
    lower (zero when both already use every core).
    """
    seconds = {r["stage"]: r["seconds"] or 0.0 for r in full_run["stages"]}
    busy = full_run["busy_s"] or 0.0
    hidden = min(seconds.get("period", 0.0), seconds.get("infer", 0.0))
    saving = hidden / busy if busy > 0 else 0.0
    return {
        "period_s": seconds.get("period", 0.0),
        "infer_s": seconds.get("infer", 0.0),
        "busy_s": busy,
        "max_saving_fraction": saving,
        "max_speedup": 1.0 / (1.0 - saving) if saving < 1 else None,
    }


def run(out_dir: str | Path, kafka: LocalKafka, flavours: tuple[str, ...] = FLAVOURS) -> dict:
    out_dir = Path(out_dir)
    scratch = out_dir / "e2e-scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    objects = stream.long_objects()
    result = {
        "workload": {
            "objects": len(objects),
            "alerts_per_object": stream.ALERTS_PER_OBJECT,
            "min_points_per_object": stream.MIN_POINTS,
            "paced_fraction_of_capacity": PACED_FRACTION,
        }
    }
    for flavour in flavours:
        result[flavour] = run_flavour(kafka, objects, flavour, scratch)
    (out_dir / "e2e_bench.json").write_text(json.dumps(result, indent=2))
    return result


def run_long(out_dir: str | Path, kafka: LocalKafka, rate: float, seconds: float = LONG_SECONDS) -> dict:
    """ZTF-like alerts at `rate` for `seconds` after the same warm-up: is the plugin's RSS flat?"""
    scratch = Path(out_dir) / "e2e-scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    objects = stream.long_objects()
    per_object = min(LONG_ALERTS_PER_OBJECT, int(rate * seconds / len(objects)) + 1)
    warm_up, payloads, stats = stream.build_streams(objects, "ztf", alerts_per_object=per_object)
    warm_topic = _topic(kafka, "bench-long-warm-up")
    _produce(kafka, warm_topic, warm_up)
    _plugin(kafka, scratch, "long-warm-up", warm_topic, "full", None).start().finish()
    topic = _topic(kafka, "bench-long")
    store = scratch / "long-warm-up.sqlite"
    plugin = _plugin(kafka, scratch, "long", topic, "full", None, store).start()
    started = time.monotonic()
    sent = _produce(kafka, topic, payloads, rate=rate, duration_s=seconds)
    result = plugin.finish() | {
        "stream": stats.as_dict(),
        "rate_alerts_per_s": rate,
        "sent": sent,
        "send_s": time.monotonic() - started,
    }
    (Path(out_dir) / "long_bench.json").write_text(json.dumps(result, indent=2))
    return result
