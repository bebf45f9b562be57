"""End to end through the real Kafka: plugin vs its ceiling, a paced latency run, the per-stage table.

Per flavour (ZTF-like 30-day histories, LSST-like 12-month-sized histories; see benchmarks/stream.py):
1. warm-up: the warm-up alerts go to the run's topic and a plugin process drains them to its idle exit,
   filling the store, its changelog and the group's offsets (`warm_topic`; once for the full run and
   once for the paced run, each on its own topic);
2. full run: the measured stream (200 interleaved CRTS objects, their last 30 (ZTF) or 10 (LSST)
   detections) goes to the same topic and `varstream run` (separate process, shipped defaults: trigger,
   bundles, batch size) continues from the committed offsets with the same group and store;
3. ceiling run: the measured stream alone on its own topic, a new group, `[run] mode = "ceiling"`
   (consume, decode, commit only): no store, so no warm-up;
4. paced run: after its warm-up, the measured stream fed at half the full run's rate while the plugin
   runs: end-to-end latency;
5. variants (`run.py --e2e-variant kafka.batch_timeout_s=0.1`, any settings): a full run and a paced run
   at the SAME rate as step 4, each after its own warm-up, side by side with the shipped defaults;
6. repeats (`run.py --e2e-repeat N`): N - 1 more rounds of the defaults and every variant, interleaved
   (defaults, variants, defaults, variants, ...), so each setting's median and spread are measured under
   the same drift of a shared machine (two runs of the same settings differed by 18% here).
The plugin's RSS is sampled and its /metrics scraped during every run. `run_long` is the 10-minute memory
run (`run.py --long`). Absolute numbers on a shared 2-core machine are noisy; the ratios carry further.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import stream
from benchmarks.plugin_probe import PluginRun, free_port, fresh_store, plugin_config, setting_label
from broker.codecs import write_schema_folder
from broker.kafka_io import KafkaSink
from broker.offline.local_kafka import LocalKafka

FLAVOURS = ("ztf", "lsst")
PACED_FRACTION = 0.5  # of the full run's rate
PACED_SECONDS = 40.0  # alerts sent in the paced run: rate x this (at most the whole stream)
LONG_SECONDS = 600.0
LONG_ALERTS_PER_OBJECT = 150  # the long run's stream: at most the last 150 detections of each object
Settings = dict[str, dict]  # {section: {key: value}} on top of the shipped defaults
DEFAULTS_LABEL = "shipped defaults"


def _produce(kafka: LocalKafka, topic: str, payloads, rate: float | None = None, duration_s=None) -> int:
    sink = KafkaSink(kafka.bootstrap_servers, topic).connect()  # connected before the first alert's stamp
    try:
        return stream.send(sink, payloads, rate, duration_s)
    finally:
        sink.close()
        del sink  # its librdkafka handle must not outlive the broker


def _plugin(
    kafka: LocalKafka,
    scratch: Path,
    name: str,
    topic: str,
    mode: str,
    schema_dir,
    group: str,
    store: Path,
    settings: Settings | None = None,
) -> PluginRun:
    """One plugin process; `name` names its config, log and summary, `group` and `store` its state."""
    port = free_port()
    cfg = plugin_config(
        scratch / f"{name}.toml",
        kafka.bootstrap_servers,
        topic,
        group,
        port,
        mode=mode,
        schema_dir=schema_dir,
        store=store,
        settings=settings,
    )
    return PluginRun(cfg, kafka.bootstrap_servers, group, port)


def _topic(kafka: LocalKafka, name: str) -> str:
    kafka.create_topics([name, f"{name}-out", f"{name}-dlq"])
    return name


@dataclass
class WarmTopic:
    """A topic whose consumer group and store have consumed the warm-up stream: measured runs continue.

    The warm-up and the measured alerts go to the SAME topic and are consumed by the SAME group with the
    SAME store path, one plugin process after the other, so the store partitions, their changelog and the
    committed offsets stay consistent (a store copied under another group would be wiped on restore) and
    the measured run pays the changelog writes. Its run summary covers only its own alerts.
    """

    topic: str
    group: str
    store: Path
    warm_up: dict

    def plugin(
        self, kafka: LocalKafka, scratch: Path, name: str, schema_dir, settings: Settings | None = None
    ) -> PluginRun:
        return _plugin(kafka, scratch, name, self.topic, "full", schema_dir, self.group, self.store, settings)


def warm_topic(kafka: LocalKafka, scratch: Path, name: str, warm_up: list, schema_dir) -> WarmTopic:
    """Topic `bench-<name>`: the warm-up stream produced and drained by a plugin to its idle exit."""
    topic = _topic(kafka, f"bench-{name}")
    store = fresh_store(scratch / f"{name}.sqlite")
    _produce(kafka, topic, warm_up)
    group = f"g-{name}"
    warm = _plugin(kafka, scratch, f"{name}-warm-up", topic, "full", schema_dir, group, store)
    done = warm.start().finish()
    summary = {k: done[k] for k in ("alerts", "annotated", "skipped", "alerts_per_s")}
    return WarmTopic(topic, group, store, summary)


def full_and_paced(
    kafka: LocalKafka, scratch: Path, name: str, streams: tuple, schema_dir, settings: Settings | None, rate
) -> dict:
    """A full run and a paced run at `rate` (None: half the full run's), each after its own warm-up."""
    warm_up, payloads = streams
    runs, warm_ups = {}, {}
    full = warm_topic(kafka, scratch, f"{name}-full", warm_up, schema_dir)
    _produce(kafka, full.topic, payloads)
    runs["full"] = full.plugin(kafka, scratch, f"{name}-full", schema_dir, settings).start().finish()
    warm_ups["full"] = full.warm_up
    print(f"  {name} full: {runs['full']['alerts_per_s']:.0f} alerts/s", flush=True)
    rate = rate or max(1.0, PACED_FRACTION * runs["full"]["alerts_per_s"])
    n_paced = min(len(payloads), int(rate * PACED_SECONDS))
    paced = warm_topic(kafka, scratch, f"{name}-paced", warm_up, schema_dir)
    warm_ups["paced"] = paced.warm_up
    plugin = paced.plugin(kafka, scratch, f"{name}-paced", schema_dir, settings).start()
    started = time.monotonic()
    _produce(kafka, paced.topic, payloads[:n_paced], rate=rate)
    runs["paced"] = plugin.finish() | {"rate_alerts_per_s": rate, "send_s": time.monotonic() - started}
    print(
        f"  {name} paced at {rate:.0f}/s: p50 {_s(runs['paced']['latency_p50_s'])}, "
        f"p99 {_s(runs['paced']['latency_p99_s'])}",
        flush=True,
    )
    return {"runs": runs, "warm_up": warm_ups}


def run_flavour(
    kafka: LocalKafka,
    objects: list,
    flavour: str,
    scratch: Path,
    variants: list[Settings] = (),
    repeat: int = 1,
) -> dict:
    schema_dir = write_schema_folder(scratch / "schemas").parent if flavour == "lsst" else None
    warm_up, payloads, stats = stream.build_streams(objects, flavour)
    print(
        f"  {flavour}: {stats.alerts} alerts of {stats.objects} objects, {stats.mean_history_points:.0f} "
        f"history points and {stats.mean_kb:.1f} KB per alert (built in {stats.build_s:.0f} s)",
        flush=True,
    )
    measured = full_and_paced(kafka, scratch, flavour, (warm_up, payloads), schema_dir, None, None)
    runs = measured["runs"]
    # The ceiling keeps no store: the measured alerts alone on a topic of their own, a fresh group.
    ceiling_topic = _topic(kafka, f"bench-{flavour}-ceiling")
    _produce(kafka, ceiling_topic, payloads)
    store = fresh_store(scratch / f"{flavour}-ceiling.sqlite")
    group = f"g-{flavour}-ceiling"
    plugin = _plugin(kafka, scratch, f"{flavour}-ceiling", ceiling_topic, "ceiling", schema_dir, group, store)
    runs["ceiling"] = plugin.start().finish()
    print(f"  {flavour} ceiling: {runs['ceiling']['alerts_per_s']:.0f} alerts/s", flush=True)
    rate = runs["paced"]["rate_alerts_per_s"]
    tried = []
    for n, settings in enumerate(variants):
        label = setting_label(settings)
        print(f"  {flavour} variant {label}:", flush=True)
        name = f"{flavour}-variant{n}"
        tried.append(
            {"settings": label}
            | full_and_paced(kafka, scratch, name, (warm_up, payloads), schema_dir, settings, rate)
        )
    rows = [(DEFAULTS_LABEL, runs), *((t["settings"], t["runs"]) for t in tried)]
    for r in range(1, repeat):
        for n, settings in enumerate([None, *variants]):
            label = DEFAULTS_LABEL if settings is None else setting_label(settings)
            print(f"  {flavour} round {r + 1} of {repeat}, {label}:", flush=True)
            name = f"{flavour}-round{r}-{n}"
            again = full_and_paced(kafka, scratch, name, (warm_up, payloads), schema_dir, settings, rate)
            rows.append((label, again["runs"]))
    return {
        "stream": stats.as_dict(),
        "warm_up": measured["warm_up"],
        "runs": runs,
        "variants": tried,
        "repeats": repeat_summary(rows) if repeat > 1 else None,
        "fraction_of_ceiling": runs["full"]["alerts_per_s"] / max(runs["ceiling"]["alerts_per_s"], 1e-9),
        "overlap": overlap_estimate(runs["full"]),
    }


def repeat_summary(rows: list[tuple[str, dict]]) -> dict:
    """Per setting label, in first-seen order: every round's full alerts/s and paced p99, their medians,
    and the median full rate as a ratio to the shipped defaults' median (rows: (label, runs) per round)."""
    out: dict = {}
    for label, runs in rows:
        entry = out.setdefault(label, {"full_alerts_per_s": [], "paced_p99_s": []})
        entry["full_alerts_per_s"].append(runs["full"]["alerts_per_s"])
        entry["paced_p99_s"].append(runs["paced"].get("latency_p99_s"))
    for entry in out.values():
        entry["rounds"] = len(entry["full_alerts_per_s"])
        entry["median_full_alerts_per_s"] = statistics.median(entry["full_alerts_per_s"])
        p99 = [v for v in entry["paced_p99_s"] if v is not None]
        entry["median_paced_p99_s"] = statistics.median(p99) if p99 else None
    base = out.get(DEFAULTS_LABEL, {}).get("median_full_alerts_per_s")
    for entry in out.values():
        entry["ratio_to_defaults"] = entry["median_full_alerts_per_s"] / base if base else None
    return out


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


def run(
    out_dir: str | Path,
    kafka: LocalKafka,
    flavours: tuple[str, ...] = FLAVOURS,
    variants: list[Settings] = (),
    repeat: int = 1,
) -> dict:
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
        result[flavour] = run_flavour(kafka, objects, flavour, scratch, list(variants), repeat)
    (out_dir / "e2e_bench.json").write_text(json.dumps(result, indent=2))
    return result


def run_long(out_dir: str | Path, kafka: LocalKafka, rate: float, seconds: float = LONG_SECONDS) -> dict:
    """ZTF-like alerts at `rate` for `seconds` after the same warm-up: is the plugin's RSS flat?"""
    scratch = Path(out_dir) / "e2e-scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    objects = stream.long_objects()
    per_object = min(LONG_ALERTS_PER_OBJECT, int(rate * seconds / len(objects)) + 1)
    warm_up, payloads, stats = stream.build_streams(objects, "ztf", alerts_per_object=per_object)
    warmed = warm_topic(kafka, scratch, "long", warm_up, None)
    plugin = warmed.plugin(kafka, scratch, "long", None).start()
    started = time.monotonic()
    sent = _produce(kafka, warmed.topic, payloads, rate=rate, duration_s=seconds)
    result = plugin.finish() | {
        "stream": stats.as_dict(),
        "rate_alerts_per_s": rate,
        "sent": sent,
        "warm_up": warmed.warm_up,
        "send_s": time.monotonic() - started,
    }
    (Path(out_dir) / "long_bench.json").write_text(json.dumps(result, indent=2))
    return result
