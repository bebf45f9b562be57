"""ZTF alerts: decode (one Avro container per message, schema inside) into `Alert`; build/encode for replay.

Reads anything written with the official ZTF schema (v4.02 and earlier versions with the same photometry
fields) or with varstream's ZTF-like subset `schemas/ztf_alert.avsc`: fields are read by name.

Per point (the candidate, then each prv_candidate), in this order of precedence:
  upper_limit        magpsf is null (a non-detection; prv_candidates carry these)
  non_finite         a needed value (jd, magpsf, sigmapsf, magnr, sigmagnr, isdiffpos) is null, NaN or inf;
                     magnr is null when no reference-catalogue source lies near the candidate
  bad_error          sigmapsf <= 0 or sigmagnr < 0 (sigmagnr = 0 is allowed: replayed references are exact)
  flagged            fid not 1/2/3; distnr > ZTF_MAX_DISTNR_PIX (the reference source is another star, so
                     the DC sum is meaningless); nbad > ZTF_MAX_NBAD (bad pixels at the source);
                     rb < ZTF_MIN_RB (likely bogus; the threshold Fink and ALeRCE use). Null values pass.
  non_positive_flux  the DC flux 10^(-0.4 magnr) ± 10^(-0.4 magpsf) is <= 0
mjd = jd - 2400000.5 (UTC, start of exposure).
"""

from __future__ import annotations

from functools import cache

import numpy as np

import schemas
from broker.alerts import Alert
from broker.codecs.container import ContainerWriter, read_container
from broker.codecs.ids import point_id
from broker.codecs.photometry import (
    MJD_OFFSET,
    ZTF_BAND_OF_FID,
    ZTF_FID_OF_BAND,
    apply_cuts,
    as_float_array,
    assemble_alert,
    ztf_dc_magnitudes,
    ztf_difference_from_dc,
)
from broker.errors import DecodeError
from models.lightcurve import LightCurve

ZTF_MAX_DISTNR_PIX = 1.4
ZTF_MAX_NBAD = 0
ZTF_MIN_RB = 0.55
_SIGN_OF_ISDIFFPOS = {"t": 1.0, "1": 1.0, "f": -1.0, "0": -1.0}
_NEEDED = ("jd", "fid", "magpsf", "sigmapsf", "isdiffpos", "magnr", "sigmagnr")
# Flux ratio of the replayed reference to the faintest point of its band: keeps every difference positive
# and well away from zero, so the float32 fields round-trip the DC magnitude to ~1e-6 mag.
_REFERENCE_FLUX_FRACTION = 0.5
REPLAY_VERSION = "varstream-replay"


def decode_ztf(payload: bytes) -> Alert:
    """Alert from one ZTF Kafka message (an Avro container holding exactly one alert)."""
    records = read_container(payload)
    if len(records) != 1:
        raise DecodeError("undecodable", f"Avro container holds {len(records)} records; expected one alert")
    return ztf_record_to_alert(records[0])


def ztf_record_to_alert(record: dict) -> Alert:
    """Alert from a decoded ZTF alert record (dict as fastavro reads it)."""
    try:
        object_id = record["objectId"]
        alert_id = record["candid"]
        points = [record["candidate"], *(record.get("prv_candidates") or ())]
        columns = {name: [p[name] for p in points] for name in _NEEDED}
    except (KeyError, TypeError) as exc:
        raise DecodeError("missing_field", f"ZTF alert lacks field {exc} (is it a ZTF alert?)") from exc
    if object_id is None or alert_id is None or columns["jd"][0] is None:
        raise DecodeError("missing_field", "ZTF alert has a null objectId, candid or candidate.jd")

    n = len(points)
    jd = as_float_array(columns["jd"])
    magpsf = as_float_array(columns["magpsf"])
    sigmapsf = as_float_array(columns["sigmapsf"])
    magnr = as_float_array(columns["magnr"])
    sigmagnr = as_float_array(columns["sigmagnr"])
    sign = np.array([_SIGN_OF_ISDIFFPOS.get(v, np.nan) for v in columns["isdiffpos"]], dtype=np.float64)
    bands = [ZTF_BAND_OF_FID.get(f, "?") for f in columns["fid"]]
    distnr = as_float_array([p.get("distnr") for p in points])
    nbad = as_float_array([p.get("nbad") for p in points])
    rb = as_float_array([p.get("rb") for p in points])

    mag, magerr, dc_flux = ztf_dc_magnitudes(magpsf, sigmapsf, magnr, sigmagnr, sign)
    with np.errstate(invalid="ignore"):
        keep, dropped = apply_cuts(
            [
                ("upper_limit", np.array([m is None for m in columns["magpsf"]])),
                (
                    "non_finite",
                    ~np.isfinite(np.stack([jd, magpsf, sigmapsf, magnr, sigmagnr, sign])).all(axis=0),
                ),
                ("bad_error", (sigmapsf <= 0) | (sigmagnr < 0)),
                (
                    "flagged",
                    np.array([b == "?" for b in bands])
                    | (distnr > ZTF_MAX_DISTNR_PIX)
                    | (nbad > ZTF_MAX_NBAD)
                    | (rb < ZTF_MIN_RB),
                ),
                ("non_positive_flux", ~(dc_flux > 0)),
                ("non_finite", ~(np.isfinite(mag) & np.isfinite(magerr))),
                ("bad_error", ~(magerr > 0)),
            ],
            n,
        )
    mjd = jd - MJD_OFFSET
    return assemble_alert(
        "ztf", object_id, alert_id, mjd, mag, magerr, bands, keep, dropped, f"ZTF alert {alert_id}"
    )


def build_ztf_alert(
    object_id: str,
    candid: int,
    lc: LightCurve,
    index: int,
    history_days: float = 30.0,
    ra: float = 0.0,
    dec: float = 0.0,
) -> dict:
    """ZTF-like alert dict (schema `ztf_alert`) whose candidate is point `index` of `lc`.

    prv_candidates: the earlier points no more than `history_days` before it (null when none). Each
    band's reference (magnr, sigmagnr = 0) is half the flux of the band's faintest point, so differences
    are positive (isdiffpos 't') and `decode_ztf` gives back lc's magnitudes and errors (float32-exact).
    History candids are `point_id(object_id, j)`; pass `candid=point_id(object_id, index)` to match them.
    Bands must be ZTF's g, r, i (ValueError otherwise).
    """
    n = len(lc)
    if not 0 <= index < n:
        raise ValueError(f"point index {index} outside the light curve of {object_id} ({n} points)")
    bands = [str(b) for b in lc.band]
    unknown = sorted(set(bands) - ZTF_FID_OF_BAND.keys())
    if unknown:
        raise ValueError(f"{object_id}: band(s) {unknown} have no ZTF filter id; ZTF bands are g, r, i")
    magnr_of_band = {
        band: float(
            np.float32(
                np.max(lc.mag[[b == band for b in bands]]) + 2.5 * np.log10(1 / _REFERENCE_FLUX_FRACTION)
            )
        )
        for band in set(bands)
    }
    t0 = float(lc.mjd[index])
    history = np.flatnonzero(lc.mjd[:index] >= t0 - history_days).tolist()
    chosen = [*history, index]
    magnr = np.array([magnr_of_band[bands[j]] for j in chosen])
    magpsf, sigmapsf, positive = ztf_difference_from_dc(lc.mag[chosen], lc.magerr[chosen], magnr)

    def point(k: int) -> dict:
        j = chosen[k]
        mjd = float(lc.mjd[j])
        return {
            "jd": mjd + MJD_OFFSET,
            "fid": ZTF_FID_OF_BAND[bands[j]],
            "pid": round(mjd * 1e5),  # processing id: derived from the exposure time
            "diffmaglim": None,
            "programid": 1,
            "candid": candid if j == index else point_id(object_id, j),
            "isdiffpos": "t" if positive[k] else "f",
            "nid": None,
            "rcid": None,
            "field": None,
            "ra": ra,
            "dec": dec,
            "magpsf": float(magpsf[k]),
            "sigmapsf": float(sigmapsf[k]),
            "distnr": 0.0,
            "magnr": float(magnr[k]),
            "sigmagnr": 0.0,
            "nbad": 0,
            "rb": 1.0,
            "ranr": ra,
            "decnr": dec,
            "magzpsci": None,
            "rbversion": REPLAY_VERSION,
        }

    jd_first = float(lc.mjd[0]) + MJD_OFFSET
    candidate = point(len(chosen) - 1) | {
        "ndethist": index + 1,
        "ncovhist": index + 1,
        "jdstarthist": jd_first,
        "jdendhist": t0 + MJD_OFFSET,
        "nmtchps": 0,
        "rfid": 0,
        "jdstartref": jd_first,
        "jdendref": jd_first,
        "nframesref": 1,
        "nmatches": 0,
        "drb": 1.0,
        "drbversion": REPLAY_VERSION,
    }
    return {
        "schemavsn": "4.02",
        "publisher": "varstream replay",
        "objectId": object_id,
        "candid": candid,
        "candidate": candidate,
        "prv_candidates": [point(k) for k in range(len(history))] or None,
    }


@cache
def _ztf_writer() -> ContainerWriter:
    return ContainerWriter(schemas.load("ztf_alert"))


def encode_ztf(alert: dict) -> bytes:
    """One-alert Avro container (schema inside, as ZTF sends) of a `build_ztf_alert` dict."""
    return _ztf_writer().encode(alert)
