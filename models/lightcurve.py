"""The light curve as the science code sees it: plain arrays, no survey or transport details.

Lives in `models` because both sides need it and imports run one way (broker -> models).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class LightCurve:
    """Photometry of one object, sorted by time.

    mjd: (n,) float64 days; mag: (n,) float64 magnitudes (total, not difference);
    magerr: (n,) float64 magnitudes, > 0; band: (n,) str band names ("V", "g", "r", ...).
    """

    mjd: np.ndarray
    mag: np.ndarray
    magerr: np.ndarray
    band: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.mjd)
        if not (len(self.mag) == len(self.magerr) == len(self.band) == n):
            raise ValueError(
                f"light-curve arrays differ in length: mjd {n}, mag {len(self.mag)}, "
                f"magerr {len(self.magerr)}, band {len(self.band)}"
            )

    @classmethod
    def from_arrays(cls, mjd, mag, magerr, band=None) -> LightCurve:
        """Build a time-sorted light curve; `band` may be one name for all points or None ("V")."""
        mjd = np.asarray(mjd, dtype=np.float64)
        if band is None:
            band = "V"
        if isinstance(band, str):
            band = np.full(len(mjd), band, dtype=object)
        order = np.argsort(mjd, kind="stable")
        return cls(
            mjd=mjd[order],
            mag=np.asarray(mag, dtype=np.float64)[order],
            magerr=np.asarray(magerr, dtype=np.float64)[order],
            band=np.asarray(band, dtype=object)[order],
        )

    def __len__(self) -> int:
        return len(self.mjd)

    @property
    def baseline_days(self) -> float:
        return float(self.mjd[-1] - self.mjd[0]) if len(self.mjd) > 1 else 0.0

    @property
    def bands(self) -> list[str]:
        return sorted({str(b) for b in self.band})

    def select(self, mask_or_index) -> LightCurve:
        return LightCurve(
            self.mjd[mask_or_index],
            self.mag[mask_or_index],
            self.magerr[mask_or_index],
            self.band[mask_or_index],
        )


@dataclass(frozen=True)
class LabelledLightCurve:
    """A light curve from an archive with what the archive knows about it."""

    object_id: str
    label: str | None
    lightcurve: LightCurve
    period: float | None = None  # catalogue period in days, when the archive has one
    extra: dict = field(default_factory=dict)
