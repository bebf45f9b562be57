"""Photometry conversions shared by the alert codecs: difference → total (DC) magnitudes, nJy ↔ AB mag,
quality cuts that count what they drop, and the dedupe/sort that turns points into a LightCurve.

Survey-agnostic: arrays in, arrays out. Units: magnitudes [mag], fluxes [nJy] for LSST and relative
(zero-point-free) fluxes for ZTF, times [MJD].
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from broker.alerts import DROP_REASONS, Alert
from broker.errors import UnusableAlert
from models.lightcurve import LightCurve

# 2.5 / ln(10): d(mag) = MAG_PER_LN_FLUX * d(flux) / flux. The "1.0857" of the literature, unrounded.
MAG_PER_LN_FLUX = 2.5 / math.log(10.0)
# AB magnitude of 1 nJy: m_AB = 31.4 - 2.5 log10(f / nJy).
AB_ZERO_POINT_NJY = 31.4
# Offset between JD and MJD [days].
MJD_OFFSET = 2400000.5

ZTF_BAND_OF_FID = {1: "g", 2: "r", 3: "i"}
ZTF_FID_OF_BAND = {band: fid for fid, band in ZTF_BAND_OF_FID.items()}
LSST_BANDS = ("u", "g", "r", "i", "z", "y")


def ztf_dc_magnitudes(
    magpsf: np.ndarray, sigmapsf: np.ndarray, magnr: np.ndarray, sigmagnr: np.ndarray, sign: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Total (DC) magnitude of ZTF difference detections, as Fink's `dc_mag` (zero points cancel).

    flux_dc = 10^(-0.4 magnr) + sign * 10^(-0.4 magpsf), sign = +1 when isdiffpos is 't'/'1', else -1;
    sigma(flux_dc) combines sigmapsf and sigmagnr in flux, independently. All inputs (n,) float.
    Returns (mag, magerr, flux_dc); mag is NaN where flux_dc <= 0 (the caller counts those).
    """
    with np.errstate(all="ignore"):
        ref_flux = 10.0 ** (-0.4 * magnr)
        diff_flux = 10.0 ** (-0.4 * magpsf)
        dc_flux = ref_flux + sign * diff_flux
        dc_sigma = np.hypot(sigmapsf * diff_flux, sigmagnr * ref_flux)  # [mag * flux]; the 1.0857s cancel
        mag = -2.5 * np.log10(dc_flux)
        magerr = dc_sigma / dc_flux
    return mag, magerr, dc_flux


def ztf_difference_from_dc(
    mag: np.ndarray, magerr: np.ndarray, magnr: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of `ztf_dc_magnitudes` with sigmagnr = 0: (magpsf, sigmapsf, positive) for given DC points.

    Needs flux_dc != flux_ref (else the difference has no magnitude); positive is True where the point is
    brighter than the reference (isdiffpos 't').
    """
    dc_flux = 10.0 ** (-0.4 * np.asarray(mag, dtype=np.float64))
    ref_flux = 10.0 ** (-0.4 * np.asarray(magnr, dtype=np.float64))
    diff = dc_flux - ref_flux
    if np.any(diff == 0.0):
        raise ValueError("a point is exactly as bright as its reference: no difference magnitude exists")
    magpsf = -2.5 * np.log10(np.abs(diff))
    sigmapsf = np.asarray(magerr, dtype=np.float64) * dc_flux / np.abs(diff)
    return magpsf, sigmapsf, diff > 0


def flux_to_mag(flux_njy: np.ndarray, flux_err_njy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AB magnitude and its 1-sigma error from a flux and its error in nJy (NaN where flux <= 0)."""
    with np.errstate(all="ignore"):
        mag = AB_ZERO_POINT_NJY - 2.5 * np.log10(flux_njy)
        magerr = MAG_PER_LN_FLUX * flux_err_njy / flux_njy
    return mag, magerr


def mag_to_flux(mag: np.ndarray, magerr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flux and its 1-sigma error in nJy from an AB magnitude and its error (inverse of `flux_to_mag`)."""
    flux = 10.0 ** (-0.4 * (np.asarray(mag, dtype=np.float64) - AB_ZERO_POINT_NJY))
    return flux, np.asarray(magerr, dtype=np.float64) * flux / MAG_PER_LN_FLUX


def apply_cuts(cuts: Sequence[tuple[str, np.ndarray]], n: int) -> tuple[np.ndarray, Counter]:
    """Keep-mask after the boolean drop masks `cuts` (reason, (n,) bool), applied in order.

    Each dropped point is counted once, under the first reason that drops it.
    """
    keep = np.ones(n, dtype=bool)
    dropped: Counter = Counter()
    for reason, mask in cuts:
        if reason not in DROP_REASONS:
            raise ValueError(f"unknown drop reason {reason!r}; known: {', '.join(DROP_REASONS)}")
        hit = mask & keep
        count = int(hit.sum())
        if count:
            dropped[reason] += count
            keep &= ~hit
    return keep, dropped


def unusable_reason(detected: np.ndarray, no_total: np.ndarray, no_total_reason: str) -> str:
    """Why an alert none of whose points survived is unusable (a broker.alerts.UNUSABLE_REASONS value).

    detected: (n,) bool, the point is a detection or a forced measurement (not an upper limit);
    no_total: (n,) bool, the point was dropped for lack of a total flux; no_total_reason: the survey's name
    for "every measurement lacks a total flux" (ZTF "no_reference_source", LSST "no_total_flux").
    """
    if not detected.any():
        return "upper_limits_only"
    if no_total[detected].all():
        return no_total_reason
    return "no_usable_points"


def assemble_alert(
    survey: str,
    object_id: object,
    alert_id: object,
    mjd: np.ndarray,
    mag: np.ndarray,
    magerr: np.ndarray,
    band: Sequence[str],
    keep: np.ndarray,
    dropped: Counter,
    what: str,
    reason_if_empty: str,
) -> Alert:
    """The Alert of one decoded message: point 0 is the triggering detection (its mjd is the alert's).

    UnusableAlert(reason_if_empty) when no point survived the cuts; `what` names the alert in that error.
    """
    lightcurve = assemble_lightcurve(mjd, mag, magerr, band, keep)
    if len(lightcurve) == 0:
        raise UnusableAlert(
            reason_if_empty, f"{what}: nothing usable ({reason_if_empty}; dropped {dict(dropped)})", dropped
        )
    return Alert(
        survey=survey,
        object_id=str(object_id),
        alert_id=str(alert_id),
        mjd=float(mjd[0]),
        lightcurve=lightcurve,
        dropped=dropped,
    )


def assemble_lightcurve(
    mjd: np.ndarray, mag: np.ndarray, magerr: np.ndarray, band: Sequence[str], keep: np.ndarray
) -> LightCurve:
    """Time-sorted LightCurve of the kept points, one per (mjd, band): the earliest listed wins.

    Callers list the triggering detection first, so it wins over a history copy of itself.
    """
    seen: set[tuple[float, str]] = set()
    chosen = []
    for i in np.flatnonzero(keep).tolist():
        key = (float(mjd[i]), band[i])
        if key not in seen:
            seen.add(key)
            chosen.append(i)
    index = np.asarray(chosen, dtype=np.int64)
    bands = np.empty(len(index), dtype=object)
    bands[:] = [band[i] for i in chosen]
    order = np.argsort(mjd[index], kind="stable")
    return LightCurve(
        mjd=np.asarray(mjd[index][order], dtype=np.float64),
        mag=np.asarray(mag[index][order], dtype=np.float64),
        magerr=np.asarray(magerr[index][order], dtype=np.float64),
        band=bands[order],
    )


def as_float_array(values: Sequence[float | None]) -> np.ndarray:
    """(n,) float64 with None → NaN (Avro nulls of optional numeric fields)."""
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
