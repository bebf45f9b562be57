"""ZTF alerts: decode (one Avro container per message, schema inside) into `Alert`; build/encode for replay.

Reads ZTF schemas 3.0 to 4.02 and records rewritten by other tools (other record names, every field
nullable, extra fields, no top-level `candid`: then candidate.candid) by field name; a missing optional
field reads as null. Points: the candidate, each prv_candidate, then each fp_hists entry (4.x).

Total (DC) flux per point = reference flux 10^(-0.4 magnr) + difference flux, where the difference is
  a detection:          ±10^(-0.4 magpsf), sign from isdiffpos ('t'/'1' +, 'f'/'0' -);
  forced photometry:    forcediffimflux * 10^(-0.4 magzpsci) (fp_hists, and prv_candidates that carry
                        forcediffimflux instead of magpsf); its error forcediffimfluxunc likewise.
Per point, in this order of precedence (the first reason that applies is counted):
  upper_limit        neither magpsf nor forcediffimflux (a non-detection; prv_candidates carry these)
  no_total_flux      no reference source: magnr null or negative (ZTF's -99999), or distnr null-sentinel
                     or > ZTF_MAX_DISTNR_PIX (the nearest reference source is another star)
  flagged            fid not 1/2/3; nbad > ZTF_MAX_NBAD; rb < ZTF_MIN_RB (the threshold Fink and ALeRCE
                     use); forced photometry whose procstatus is not "0" (checked first: failed forced
                     points carry -99999 in every field). Null values pass.
  non_finite         a needed value (jd, the difference flux and its error, sigmagnr, magzpsci) is null/NaN
  bad_error          sigmapsf or forcediffimfluxunc <= 0, or sigmagnr < 0 (0 is allowed: replayed
                     references are exact)
  non_positive_flux  the DC flux is <= 0
An alert none of whose points survive is UnusableAlert: upper_limits_only, no_reference_source (every
measurement lacks a reference source: a transient) or no_usable_points. mjd = jd - 2400000.5 (UTC).
"""

from __future__ import annotations

from functools import cache

import numpy as np

import schemas
from broker.alerts import Alert
from broker.codecs.container import ContainerWriter, read_container
from broker.codecs.ids import point_id
from broker.codecs.photometry import (
    MAG_PER_LN_FLUX,
    MJD_OFFSET,
    ZTF_BAND_OF_FID,
    ZTF_FID_OF_BAND,
    apply_cuts,
    as_float_array,
    assemble_alert,
    unusable_reason,
    ztf_difference_from_dc,
)
from broker.errors import DecodeError
from models.lightcurve import LightCurve

ZTF_MAX_DISTNR_PIX = 1.4
ZTF_MAX_NBAD = 0
ZTF_MIN_RB = 0.55
_SIGN_OF_ISDIFFPOS = {"t": 1.0, "1": 1.0, "f": -1.0, "0": -1.0, True: 1.0, False: -1.0}
_FIELDS = (
    "jd", "fid", "magpsf", "sigmapsf", "isdiffpos", "magnr", "sigmagnr", "distnr", "nbad", "rb",
    "forcediffimflux", "forcediffimfluxunc", "magzpsci", "procstatus",
)  # fmt: skip
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


def _points(record: dict) -> tuple[object, object, list[dict]]:
    """(objectId, candid, [candidate, *prv_candidates, *fp_hists]); DecodeError when not a ZTF alert."""
    if not isinstance(record, dict):
        raise DecodeError("missing_field", f"ZTF alert is a {type(record).__name__}, not a record")
    candidate = record.get("candidate")
    object_id = record.get("objectId")
    if not isinstance(candidate, dict) or object_id is None:
        raise DecodeError("missing_field", "ZTF alert lacks objectId or candidate (is it a ZTF alert?)")
    alert_id = record.get("candid")
    if alert_id is None:  # rewritten records may drop the top-level copy
        alert_id = candidate.get("candid")
    if alert_id is None or candidate.get("jd") is None:
        raise DecodeError("missing_field", f"ZTF alert of {object_id} has no candid or candidate.jd")
    history = [*(record.get("prv_candidates") or ()), *(record.get("fp_hists") or ())]
    if not all(isinstance(p, dict) for p in history):
        raise DecodeError("schema_invalid", f"ZTF alert {alert_id}: history entries are not records")
    return object_id, alert_id, [candidate, *history]


def ztf_record_to_alert(record: dict) -> Alert:
    """Alert from a decoded ZTF alert record (dict as fastavro reads it).

    DecodeError when the record is not a ZTF alert; UnusableAlert when it is one with nothing usable.
    """
    object_id, alert_id, points = _points(record)
    columns = {name: [p.get(name) for p in points] for name in _FIELDS}
    try:
        jd = as_float_array(columns["jd"])
        magpsf = as_float_array(columns["magpsf"])
        sigmapsf = as_float_array(columns["sigmapsf"])
        forced = as_float_array(columns["forcediffimflux"])
        forced_err = as_float_array(columns["forcediffimfluxunc"])
        magzpsci = as_float_array(columns["magzpsci"])
        magnr = as_float_array(columns["magnr"])
        sigmagnr = as_float_array(columns["sigmagnr"])
        distnr = as_float_array(columns["distnr"])
        nbad = as_float_array(columns["nbad"])
        rb = as_float_array(columns["rb"])
        sign = np.array([_SIGN_OF_ISDIFFPOS.get(v, np.nan) for v in columns["isdiffpos"]], dtype=np.float64)
        bands = [ZTF_BAND_OF_FID.get(f, "?") if isinstance(f, int) else "?" for f in columns["fid"]]
    except (TypeError, ValueError) as exc:
        raise DecodeError("schema_invalid", f"ZTF alert {alert_id}: non-numeric photometry") from exc

    is_detection = np.array([m is not None for m in columns["magpsf"]])
    is_forced = ~is_detection & np.array([f is not None for f in columns["forcediffimflux"]])
    with np.errstate(all="ignore"):
        ref_flux = 10.0 ** (-0.4 * magnr)
        forced_scale = 10.0 ** (-0.4 * magzpsci)
        diff_flux = np.where(is_detection, sign * 10.0 ** (-0.4 * magpsf), forced * forced_scale)
        # Errors in "mag x flux" units (sigma_flux * 1.0857), as for magnitudes: the 1.0857s cancel below.
        diff_sigma = np.where(
            is_detection, sigmapsf * np.abs(diff_flux), MAG_PER_LN_FLUX * forced_err * forced_scale
        )
        diff_error_ok = np.where(is_detection, sigmapsf > 0, forced_err > 0)
        dc_flux = ref_flux + diff_flux
        mag = -2.5 * np.log10(dc_flux)
        magerr = np.hypot(diff_sigma, sigmagnr * ref_flux) / dc_flux
        no_reference = ~(magnr >= 0) | (distnr < 0) | (distnr > ZTF_MAX_DISTNR_PIX)
        failed_forced = np.array([s is not None and str(s).strip() != "0" for s in columns["procstatus"]])
        keep, dropped = apply_cuts(
            [
                ("upper_limit", ~(is_detection | is_forced)),
                ("flagged", is_forced & failed_forced),  # before no_total_flux: failures carry -99999s
                ("no_total_flux", no_reference),
                (
                    "flagged",
                    np.array([b == "?" for b in bands]) | (nbad > ZTF_MAX_NBAD) | (rb < ZTF_MIN_RB),
                ),
                ("non_finite", ~np.isfinite(np.stack([jd, diff_flux, diff_sigma, sigmagnr])).all(axis=0)),
                ("bad_error", ~diff_error_ok | (sigmagnr < 0)),
                ("non_positive_flux", ~(dc_flux > 0)),
                ("non_finite", ~(np.isfinite(mag) & np.isfinite(magerr))),
                ("bad_error", ~(magerr > 0)),
            ],
            len(points),
        )
    measured = is_detection | is_forced
    return assemble_alert(
        "ztf",
        object_id,
        alert_id,
        jd - MJD_OFFSET,
        mag,
        magerr,
        bands,
        keep,
        dropped,
        f"ZTF alert {alert_id}",
        unusable_reason(measured, measured & no_reference, "no_reference_source"),
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
