"""Score a running plugin from what it published: annotations topic + the replay's truth.csv -> metrics.json.

The topic is read from its first to its end offsets as they were when reading started (a snapshot, no
consumer-group commits). Each object's last annotation (largest mjd, ties by annotated_at_ms) is its
answer, joined with the truth by objectId. The metrics are those of `varstream evaluate`
(models/evaluate.py), so offline and streaming numbers mean the same thing:

  top level          classifier, n_objects, and classification_metrics over objects whose true class the
                     model knows (n_objects_classified, accuracy, balanced_accuracy, per_class, confusion)
  novelty            novelty_metrics for "unseen class" vs the annotation's novelty_percentile above the
                     80th / 95th training-energy percentile (the same cut as energy > p80 / p95 thresholds),
                     and for the plugin's own is_novel flag
  period_recovery    period_recovery(period_days, truth period) over objects with a catalogue period
  latency_seconds    annotated_at_ms - alert_timestamp_ms over every annotation: p50, p95, p99, mean, max
  counts             objects in truth / annotated / annotated but not in truth, annotations, duplicates
                     (annotations whose alertId was already seen), undecodable records
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path

import numpy as np

from broker.kafka_views import TopicSnapshot, read_snapshot
from broker.offline.truth import read_truth
from models.evaluate import classification_metrics, novelty_metrics, period_recovery, write_report

log = logging.getLogger(__name__)

NOVELTY_PERCENTILES = {"p80": 80.0, "p95": 95.0}
LATENCY_QUANTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0}


def read_topic(bootstrap_servers: str, topic: str, timeout_s: float = 30.0) -> TopicSnapshot:
    """Every annotation of `topic` up to the end offsets it had when this call began (see read_snapshot)."""
    from broker.codecs import decode_annotation

    return read_snapshot(bootstrap_servers, topic, decode_annotation, timeout_s, "varstream-evaluate-stream")


def last_per_object(records: list[dict]) -> dict[str, dict]:
    """objectId -> its last annotation: largest mjd, ties broken by the later annotated_at_ms."""
    last: dict[str, dict] = {}
    for record in records:
        key = (record["mjd"], record["annotated_at_ms"])
        current = last.get(record["objectId"])
        if current is None or key > (current["mjd"], current["annotated_at_ms"]):
            last[record["objectId"]] = record
    return last


def latency_seconds(records: list[dict]) -> dict:
    """Percentiles of annotated_at_ms - alert_timestamp_ms over all annotations [s]."""
    delays = np.array([r["annotated_at_ms"] - r["alert_timestamp_ms"] for r in records], np.float64) / 1000.0
    if not len(delays):
        return {"n": 0, **{name: math.nan for name in LATENCY_QUANTILES}, "mean": math.nan, "max": math.nan}
    quantiles = {name: float(np.percentile(delays, q)) for name, q in LATENCY_QUANTILES.items()}
    return {"n": len(delays), **quantiles, "mean": float(delays.mean()), "max": float(delays.max())}


def stream_metrics(snapshot: TopicSnapshot, truth: dict[str, dict]) -> tuple[dict, dict]:
    """(metrics, energies) of a topic snapshot against the truth; energies feed the report's histogram.

    Shaped like `varstream evaluate`'s metrics.json: classifier, n_objects, classification metrics at the
    top level (n_objects_classified, accuracy, balanced_accuracy, per_class, confusion_matrix), novelty,
    period_recovery; plus latency_seconds and counts.
    """
    records = snapshot.records
    last = last_per_object(records)
    joined = [(truth[o], a) for o, a in last.items() if o in truth]
    models = Counter((tuple(a["class_names"]), a["model_name"], a["model_version"]) for _, a in joined)
    if len(models) > 1:
        log.warning("annotations come from %d classifiers or class lists; using the most common", len(models))
    (class_tuple, model_name, model_version), _ = (
        models.most_common(1)[0] if models else (((), None, None), 0)
    )
    class_names = list(class_tuple)
    known = [(t, a) for t, a in joined if t["class"] in class_names]
    metrics: dict = {
        "classifier": {"name": model_name, "version": model_version},
        "n_objects": len(truth),
        "n_objects_annotated": len(joined),
        "skipped": {"not_annotated": len(truth) - len(joined)},
        "class_names": class_names,
    }
    metrics.update(
        classification_metrics(
            [t["class"] for t, _ in known], [a["predicted_class"] for _, a in known], class_names
        )
    )
    metrics["n_objects_classified"] = metrics.pop("n")
    with_novelty = [(t, a) for t, a in joined if a.get("novelty_percentile") is not None]
    is_unseen = np.array([t["class"] not in class_names for t, _ in with_novelty], bool)
    percentile = np.array([a["novelty_percentile"] for _, a in with_novelty], np.float64)
    energy = np.array([a["novelty_energy"] for _, a in with_novelty], np.float64)
    if with_novelty:
        flagged = np.array([bool(a.get("is_novel")) for _, a in with_novelty], np.float64)
        first = with_novelty[0][1]
        metrics["novelty"] = {
            "bundle": {
                "name": first.get("novelty_model_name"),
                "version": first.get("novelty_model_version"),
            },
            "n_seen": int((~is_unseen).sum()),
            "n_unseen": int(is_unseen.sum()),
            "unseen_classes": sorted(
                {str(t["class"]) for (t, _), u in zip(with_novelty, is_unseen, strict=True) if u}
            ),
            "threshold_units": "percentile of the training energies (novelty_percentile)",
            **novelty_metrics(is_unseen, percentile, NOVELTY_PERCENTILES),
            "is_novel": novelty_metrics(is_unseen, flagged, {"is_novel": 0.5})["is_novel"],
        }
    with_period = [(t, a) for t, a in joined if np.isfinite(t["period"])]
    if with_period:
        metrics["period_recovery"] = period_recovery(
            np.array([a["period_days"] for _, a in with_period], np.float64),
            np.array([t["period"] for t, _ in with_period], np.float64),
        )
    metrics["latency_seconds"] = latency_seconds(records)
    alert_ids = Counter(r["alertId"] for r in records)
    metrics["counts"] = {
        "objects_in_truth": len(truth),
        "objects_annotated": len(joined),
        "objects_annotated_not_in_truth": len(last) - len(joined),
        "objects_known_class": len(known),
        "annotations": len(records),
        "duplicate_annotations": sum(n - 1 for n in alert_ids.values()),
        "undecodable_records": dict(snapshot.undecodable),
    }
    return metrics, {"seen": energy[~is_unseen], "unseen": energy[is_unseen]}


def evaluate_stream(
    bootstrap_servers: str, topic: str, truth_path: str | Path, out_dir: str | Path, timeout_s: float = 30.0
) -> dict:
    """Read the annotations topic, score it against truth.csv, write metrics.json (+ plots) to out_dir."""
    truth = read_truth(truth_path)
    snapshot = read_topic(bootstrap_servers, topic, timeout_s)
    metrics, energies = stream_metrics(snapshot, truth)
    metrics["source"] = {"bootstrap_servers": bootstrap_servers, "topic": topic, "truth": str(truth_path)}
    write_report(out_dir, metrics, energies["seen"], energies["unseen"], None)
    return metrics
