"""The annotation record: the plugin's answer to one alert (schema `schemas/annotation.avsc`)."""

from __future__ import annotations

import math
import time

from broker.alerts import Alert
from broker.outcomes import Annotated
from broker.runtime import InferenceRuntime
from models.lightcurve import LightCurve

SCHEMA_VERSION = "1.2"  # 1.1: period_runner_up_days; 1.2: fold_period_days (both optional, default null)


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def build_annotation(
    alert: Alert,
    lightcurve: LightCurve,
    outcome: Annotated,
    runtime: InferenceRuntime,
    alert_timestamp_ms: int,
    annotated_at_ms: int | None = None,
) -> dict:
    """Annotation dict for an alert whose object was classified."""
    if not isinstance(outcome, Annotated):
        raise ValueError(f"alert {alert.alert_id} has no classification to annotate ({outcome})")
    c, p = outcome.classification, outcome.period
    names = runtime.class_names
    best = c.predicted_index
    novelty = runtime.novelty
    return {
        "objectId": alert.object_id,
        "alertId": alert.alert_id,
        "survey": alert.survey,
        "mjd": float(alert.mjd),
        "n_points": len(lightcurve),
        "bands": lightcurve.bands,
        "baseline_days": lightcurve.baseline_days,
        "period_days": float(p.period_days),
        "period_power": float(p.power),
        "period_significance": float(p.false_alarm_probability),
        "period_runner_up_days": _finite_or_none(p.runner_up_period_days),
        "fold_period_days": _finite_or_none(p.fold_period_days),
        "class_names": names,
        "probabilities": [float(x) for x in c.proba],
        "predicted_class": names[best],
        "predicted_probability": float(c.proba[best]),
        "novelty_energy": _finite_or_none(c.novelty_energy),
        "novelty_percentile": _finite_or_none(c.novelty_percentile),
        "is_novel": c.is_novel,
        "model_name": runtime.classifier.name,
        "model_version": runtime.classifier.version,
        "novelty_model_name": novelty.name if novelty is not None else None,
        "novelty_model_version": novelty.version if novelty is not None else None,
        "windows_used": c.windows_used,
        "alert_timestamp_ms": int(alert_timestamp_ms),
        "annotated_at_ms": int(annotated_at_ms if annotated_at_ms is not None else time.time() * 1000),
        "schema_version": SCHEMA_VERSION,
    }
