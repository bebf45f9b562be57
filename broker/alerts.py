"""What a decoded alert is, whatever survey and wire format it came in."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from models.lightcurve import LightCurve

# Why single photometry points in an alert were not kept (bounded set, used as metric labels).
DROP_REASONS = ("upper_limit", "non_finite", "bad_error", "flagged", "non_positive_flux")


@dataclass
class Alert:
    """One alert: the triggering detection plus the history its packet carried, valid points only.

    survey: "ztf" or "lsst"; object_id: ZTF objectId or LSST diaObjectId (as str);
    alert_id: ZTF candid or LSST diaSourceId (as str) — every annotation carries it;
    mjd: time of the triggering detection [MJD]; lightcurve: total (DC) magnitudes, time-sorted,
    including the triggering point when it passed the quality cuts;
    dropped: reason -> number of points discarded while decoding (see DROP_REASONS).
    """

    survey: str
    object_id: str
    alert_id: str
    mjd: float
    lightcurve: LightCurve
    dropped: Counter = field(default_factory=Counter)

    @property
    def n_points(self) -> int:
        return len(self.lightcurve)


def empty_lightcurve() -> LightCurve:
    return LightCurve(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, dtype=object))
