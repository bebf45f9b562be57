"""Stand-in for a running varstream: exports `broker.metrics.Metrics` and drives it like a busy pipeline.

Run: `python -m tests.integration.metrics_driver --port P [--seconds S]`. Every tick is one consumed batch:
alerts split into annotated / skipped (by reason) / dead-lettered so the accounting identity holds, stage
and end-to-end latencies drawn from log-normals around plausible CPU numbers, a class mix, light-curve sizes
with ~5% novel (more of the young ones), three partitions of consumer lag, and the model info. The first
batch dead-letters one message (schema_invalid), so the dead-letter alert has something to fire on. The
scrape test's fast target, beside the real plugin (`varstream run`).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from broker.metrics import POINTS_BINS, SKIP_REASONS, STAGES, Metrics, serve

CLASSES = ("RRab", "RRc", "EA", "EB", "Cep", "LPV", "DSCT")
CLASS_WEIGHTS = np.array([0.25, 0.12, 0.18, 0.15, 0.08, 0.17, 0.05])
# median seconds per batch for each stage (lognormal sigma 0.5)
STAGE_MEDIAN_S = dict(zip(STAGES, (0.002, 0.004, 0.006, 0.05, 0.004, 0.03, 0.003, 0.002), strict=True))
# share of annotations by light-curve size (POINTS_BINS): a stream sees many objects young
POINTS_WEIGHTS = np.array([0.0, 0.2, 0.15, 0.1, 0.55])
TOPIC = "ztf-alerts"
N_PARTITIONS = 3


# Share of each skip reason among skipped alerts: mostly the trigger's, some valid-but-unusable alerts.
SKIP_MIX = {
    "too_few_points": 0.3,
    "not_enough_new_points": 0.25,
    "too_soon": 0.1,
    "non_periodic": 0.15,
    "no_window": 0.05,
    "upper_limits_only": 0.05,
    "no_reference_source": 0.05,
    "no_total_flux": 0.05,
}
assert set(SKIP_MIX) <= set(SKIP_REASONS)


def drive_batch(metrics: Metrics, rng: np.random.Generator, first: bool) -> None:
    """One consumed batch worth of metric updates."""
    n_alerts = int(rng.poisson(40)) + 1
    metrics.alerts_consumed.inc(n_alerts)
    metrics.batch_size.observe(n_alerts)
    for stage in STAGES:
        metrics.stage_latency.labels(stage=stage).observe(STAGE_MEDIAN_S[stage] * rng.lognormal(0.0, 0.5))

    n_dead = 1 if first else int(rng.random() < 0.02)
    if n_dead:
        metrics.alerts_dead_lettered.labels(reason="schema_invalid").inc(n_dead)
    remaining = n_alerts - n_dead
    skipped = rng.multinomial(int(rng.binomial(remaining, 0.4)), list(SKIP_MIX.values()))
    for reason, count in zip(SKIP_MIX, skipped, strict=True):
        metrics.alerts_skipped.labels(reason=reason).inc(int(count))
    n_annotated = remaining - int(skipped.sum())
    for reason, count in (("upper_limit", rng.poisson(20)), ("non_finite", rng.poisson(1))):
        metrics.points_dropped.labels(reason=reason).inc(int(count))

    if n_annotated:
        metrics.inference_batch_size.observe(n_annotated)
        metrics.alerts_annotated.inc(n_annotated)
        for latency in rng.lognormal(np.log(1.5), 0.8, size=n_annotated):
            metrics.end_to_end_latency.observe(float(latency))
        for name, count in zip(CLASSES, rng.multinomial(n_annotated, CLASS_WEIGHTS), strict=True):
            if count:
                metrics.annotations_by_class.labels(class_name=name).inc(int(count))
        sizes = rng.multinomial(n_annotated, POINTS_WEIGHTS)
        for points, count in zip(POINTS_BINS, sizes, strict=True):
            metrics.annotations_by_points.labels(points=points).inc(int(count))
            # young objects are flagged more often than full ones (README, k-NN head at p95)
            novel = rng.binomial(int(count), 0.05 if points == "200+" else 0.075)
            metrics.novel_annotations.labels(points=points).inc(int(novel))
        metrics.last_annotation_timestamp.set(time.time())

    for partition in range(N_PARTITIONS):
        metrics.consumer_lag.labels(topic=TOPIC, partition=str(partition)).set(int(rng.poisson(120)))
    metrics.store_objects.inc(int(rng.poisson(5)))
    metrics.loop_heartbeat.set_to_current_time()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--seconds", type=float, default=600.0, help="stop after this long")
    parser.add_argument("--tick", type=float, default=0.2, help="seconds between batches")
    args = parser.parse_args(argv)

    metrics = Metrics()
    # the keys of broker.runtime.InferenceRuntime.info
    metrics.model_info.info(
        {
            "classifier_name": "crts-itcn-supcon",
            "classifier_version": "0.1.0",
            "novelty_name": "crts-itcn-knn10-pa",
            "novelty_version": "0.1.0",
            "device": "cpu",
        }
    )
    serve(args.port, host=args.host)
    rng = np.random.default_rng(7)
    deadline = time.monotonic() + args.seconds
    first = True
    while time.monotonic() < deadline:
        drive_batch(metrics, rng, first)
        first = False
        time.sleep(args.tick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
