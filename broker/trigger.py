"""Trigger policy: which alerts earn a (new) classification of their object.

Classifying on every alert would re-run the period search hundreds of times per object for little new
information; classifying once would freeze a young object's first guess. The policy re-classifies when the
light curve has grown by a fraction since the last classification (and, optionally, after some observing
time), so the number of classifications per object grows only logarithmically with its points.
The decision depends only on the object's stored state, so a redelivered alert gets the same decision.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.config import TriggerConfig
from broker.store import ObjectState


@dataclass(frozen=True)
class Decision:
    classify: bool
    reason: str | None = None  # a SKIP_REASONS value when not classified


CLASSIFY = Decision(True)


def decide(state: ObjectState, alert_mjd: float, config: TriggerConfig) -> Decision:
    """Classify the object at this alert, or say why not."""
    if state.n_points < config.min_points:
        return Decision(False, "too_few_points")
    if state.classified_n_points <= 0:
        return CLASSIFY
    grown = (state.n_points - state.classified_n_points) / state.classified_n_points
    if grown < config.min_new_fraction or state.n_points <= state.classified_n_points:
        return Decision(False, "not_enough_new_points")
    if state.classified_mjd is not None and alert_mjd - state.classified_mjd < config.min_interval_days:
        return Decision(False, "too_soon")
    return CLASSIFY
