"""What a decoded alert is, whatever survey and wire format it came in."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from models.lightcurve import LightCurve

# Why single photometry points in an alert were not kept (bounded set, used as metric labels).
# no_total_flux: a difference flux with nothing to add it to (ZTF: no reference source near the candidate;
# LSST: a difference-only source or forced source), so no total (DC) magnitude exists for the point.
DROP_REASONS = ("upper_limit", "no_total_flux", "non_finite", "bad_error", "flagged", "non_positive_flux")
# Why a valid alert as a whole was skipped by the decoder (raised as broker.errors.UnusableAlert).
UNUSABLE_REASONS = (
    "upper_limits_only",  # its points are all non-detections
    "no_reference_source",  # ZTF: no reference-catalogue source, so no total magnitude (a transient)
    "no_total_flux",  # LSST: difference fluxes only (schemas 6.x/7.x, or scienceFlux null)
    "no_usable_points",  # detections exist but every one failed the quality cuts
    "solar_system_source",  # LSST: a moving object (ssObject), no diaObject to hold a light curve
)


@dataclass
class Alert:
    """One alert: the triggering detection plus the history its packet carried, valid points only.

    survey: "ztf" or "lsst"; object_id: ZTF objectId or LSST diaObjectId (as str);
    alert_id: ZTF candid or LSST diaSourceId (as str) — every annotation carries it;
    mjd: time of the triggering detection [MJD]; lightcurve: total (DC) magnitudes, time-sorted,
    including the triggering point when it passed the quality cuts;
    dropped: reason -> number of points discarded while decoding (see DROP_REASONS);
    history: "full" (decoded whole), "read" / "skipped" (lazy decoding read or skipped the history).
    """

    survey: str
    object_id: str
    alert_id: str
    mjd: float
    lightcurve: LightCurve
    dropped: Counter = field(default_factory=Counter)
    history: str = "full"

    @property
    def n_points(self) -> int:
        return len(self.lightcurve)


def empty_lightcurve() -> LightCurve:
    return LightCurve(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, dtype=object))
