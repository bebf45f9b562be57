"""LSST alerts: decode (Confluent wire format) into `Alert`; build and encode LSST-like alerts for replay.

Reads every official lsst-alert-packet schema (3.0 to 11.x) by field name, and varstream's LSST-like subset
of lsst.v11_0. Points: diaSource (the trigger), prvDiaSources, then prvDiaForcedSources. Total magnitudes
come from a direct-image flux only: `scienceFlux` (5.0 and 8.0+, nJy) or `totFlux` (up to 4.x):
AB mag = 31.4 - 2.5 log10(f), magerr = 1.0857 σ/f. `psfFlux` is a difference flux and is never used as a
magnitude: adding a template flux is not possible honestly, because the 6.x/7.x schemas carry none. So a
6.x/7.x alert (difference fluxes only) is skipped as UnusableAlert("no_total_flux"), never dead-lettered;
its points count as dropped `no_total_flux`. Time: midpointMjdTai (midPointTai up to 4.x, TAI).
Band: `band` (`filterName` up to 4.x).

Per point, in this order of precedence:
  no_total_flux      the schema has no total flux, or the point's scienceFlux is null or the placeholder
                     0 ± 0 (simulated streams, e.g. PLAsTiCC-based samples, fill it so)
  non_finite         time, flux error or band is null, NaN or inf
  bad_error          scienceFluxErr <= 0
  flagged            any of LSST_FLAGS is true, or the source was withdrawn (timeWithdrawnMjdTai set)
  non_positive_flux  scienceFlux <= 0
The object is diaSource.diaObjectId, else diaObject.diaObjectId. A source with neither but an ssObjectId
(a solar-system alert) is UnusableAlert("solar_system_source"); with none of them, DecodeError.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

import fastavro
import numpy as np

import schemas
from broker.alerts import Alert
from broker.codecs.ids import lsst_object_id, point_id
from broker.codecs.photometry import (
    LSST_BANDS,
    apply_cuts,
    as_float_array,
    assemble_alert,
    flux_to_mag,
    mag_to_flux,
    unusable_reason,
)
from broker.codecs.resolver import VARSTREAM_LSST_SCHEMA_ID, SchemaResolver, split_wire, wire_header
from broker.errors import DecodeError, UnusableAlert
from models.lightcurve import LightCurve

# Boolean diaSource flags that drop a point: the forced photometry behind scienceFlux failed, or the
# centre is saturated, hit by a cosmic ray, has no data, is off the image, is an injected fake (science or
# template), or belongs to a satellite glint trail. Flags a schema lacks are not checked.
LSST_FLAGS = (
    "forced_PsfFlux_flag",
    "pixelFlags_saturatedCenter",
    "pixelFlags_crCenter",
    "pixelFlags_nodataCenter",
    "pixelFlags_offimage",
    "pixelFlags_injectedCenter",
    "pixelFlags_injected_templateCenter",
    "glint_trail",
)
# Field names across schema versions: the current name first.
TIME_FIELDS = ("midpointMjdTai", "midPointTai")
_FLUX_FIELDS = ("scienceFlux", "totFlux")
_BAND_FIELDS = ("band", "filterName")
_PROCESSING_DELAY_DAYS = 60.0 / 86400.0  # replayed timeProcessedMjdTai: one minute after the exposure


def decode_lsst(payload: bytes, resolver: SchemaResolver) -> Alert:
    """Alert from one LSST Kafka message: 0x00, 4-byte big-endian schema id, schemaless Avro alert."""
    schema_id = split_wire(payload)
    schema = resolver.schema(schema_id)
    buf = io.BytesIO(payload)
    buf.seek(5)
    try:
        record = fastavro.schemaless_reader(buf, schema, None)
    except Exception as exc:  # any failure to read untrusted bytes is the same outcome
        raise DecodeError(
            "undecodable", f"Avro body does not read with schema id {schema_id}: {exc!r}"
        ) from exc
    left = len(payload) - buf.tell()
    if left:
        raise DecodeError(
            "schema_invalid", f"{left} bytes left after the alert: not written with schema id {schema_id}"
        )
    return lsst_record_to_alert(record, f"schema id {schema_id}")


def _first(point: dict, names: tuple[str, ...]) -> object:
    """The value of the first of `names` the point has (None when it has none of them)."""
    for name in names:
        if name in point:
            return point[name]
    return None


def dia_object_id(record: dict, source: dict) -> object:
    """The alert's object: diaSource.diaObjectId, else diaObject.diaObjectId (None when neither)."""
    object_id = source.get("diaObjectId")
    return object_id if object_id is not None else (record.get("diaObject") or {}).get("diaObjectId")


def _sources(record: dict, origin: str) -> tuple[dict, list[dict], list[dict]]:
    """(diaSource, prvDiaSources, prvDiaForcedSources); DecodeError when the record is not an LSST alert."""
    source = record.get("diaSource") if isinstance(record, dict) else None
    if not isinstance(source, dict):
        raise DecodeError("missing_field", f"LSST alert ({origin}) lacks diaSource (is it an LSST alert?)")
    history = list(record.get("prvDiaSources") or ())
    forced = list(record.get("prvDiaForcedSources") or ())
    if not all(isinstance(p, dict) for p in history + forced):
        raise DecodeError("schema_invalid", f"LSST alert ({origin}): history entries are not records")
    return source, history, forced


def lsst_record_to_alert(record: dict, origin: str = "record") -> Alert:
    """Alert from a decoded LSST alert record (dict as fastavro reads it); `origin` names it in errors.

    DecodeError when the record is not an LSST alert; UnusableAlert when it is one with nothing usable.
    """
    source, history, forced = _sources(record, origin)
    alert_id = source.get("diaSourceId")
    if alert_id is None:
        raise DecodeError("missing_field", f"LSST alert ({origin}) has no diaSource.diaSourceId")
    object_id = dia_object_id(record, source)
    if object_id is None:
        if source.get("ssObjectId") is not None or record.get("ssObject"):
            raise UnusableAlert(
                "solar_system_source", f"LSST alert {alert_id} ({origin}) is a solar-system source"
            )
        raise DecodeError("missing_field", f"LSST alert {alert_id} ({origin}) has no diaObjectId")
    if _first(source, TIME_FIELDS) is None:
        raise DecodeError("missing_field", f"LSST alert {alert_id} ({origin}) diaSource has no time")

    points = [source, *history, *forced]
    n = len(points)
    try:
        mjd = as_float_array([_first(p, TIME_FIELDS) for p in points])
        flux = as_float_array([_first(p, _FLUX_FIELDS) for p in points])
        flux_err = as_float_array([_first(p, tuple(f + "Err" for f in _FLUX_FIELDS)) for p in points])
    except (TypeError, ValueError) as exc:
        what = f"LSST alert {alert_id} ({origin})"
        raise DecodeError("schema_invalid", f"{what}: non-numeric photometry") from exc
    # No field, a null, or the 0 ± 0 placeholder that simulated streams put where nothing was measured.
    no_total = np.array([_first(p, _FLUX_FIELDS) is None for p in points]) | ((flux == 0) & (flux_err == 0))
    bands = [_first(p, _BAND_FIELDS) for p in points]
    bands = [b if isinstance(b, str) else None for b in bands]
    flagged = np.array(
        [
            p.get("timeWithdrawnMjdTai") is not None or any(p.get(name) is True for name in LSST_FLAGS)
            for p in points
        ]
    )
    mag, magerr = flux_to_mag(flux, flux_err)
    with np.errstate(invalid="ignore"):
        keep, dropped = apply_cuts(
            [
                ("no_total_flux", no_total),
                ("non_finite", ~np.isfinite(np.stack([mjd, flux, flux_err])).all(axis=0)),
                ("non_finite", np.array([b is None for b in bands])),
                ("bad_error", flux_err <= 0),
                ("flagged", flagged),
                ("non_positive_flux", flux <= 0),
                ("non_finite", ~(np.isfinite(mag) & np.isfinite(magerr))),
            ],
            n,
        )
    return assemble_alert(
        "lsst",
        object_id,
        alert_id,
        mjd,
        mag,
        magerr,
        bands,
        keep,
        dropped,
        f"LSST alert {alert_id} ({origin})",
        unusable_reason(np.ones(n, dtype=bool), no_total, "no_total_flux"),
    )


def build_lsst_alert(
    object_id: str,
    source_id: int,
    lc: LightCurve,
    index: int,
    history_days: float = 365.0,
    ra: float = 0.0,
    dec: float = 0.0,
) -> dict:
    """LSST-like alert dict (schema `lsst_alert`, also valid for lsst.v11_0) for point `index` of `lc`.

    prvDiaSources: the earlier points no more than `history_days` before it (null when none), with
    diaSourceId `point_id(object_id, j)`; pass `source_id=point_id(object_id, index)` to match them.
    scienceFlux/Err [nJy] come from lc's AB magnitudes; templateFlux is fixed per (object, band) at the
    band's median flux and psfFlux = scienceFlux - templateFlux. diaObjectId = `lsst_object_id(object_id)`.
    Bands must be LSST's u, g, r, i, z, y (ValueError otherwise).
    """
    n = len(lc)
    if not 0 <= index < n:
        raise ValueError(f"point index {index} outside the light curve of {object_id} ({n} points)")
    bands = [str(b) for b in lc.band]
    unknown = sorted(set(bands) - set(LSST_BANDS))
    if unknown:
        raise ValueError(f"{object_id}: band(s) {unknown} are not LSST bands {', '.join(LSST_BANDS)}")
    flux, flux_err = mag_to_flux(lc.mag, lc.magerr)
    template = {b: float(np.float32(np.median(flux[[x == b for x in bands]]))) for b in set(bands)}
    t0 = float(lc.mjd[index])
    history = np.flatnonzero(lc.mjd[:index] >= t0 - history_days).tolist()
    chosen = [*history, index]
    dia_object_id = lsst_object_id(object_id)

    def source(j: int) -> dict:
        mjd = float(lc.mjd[j])
        science = float(np.float32(flux[j]))
        error = float(np.float32(flux_err[j]))
        difference = science - template[bands[j]]
        return (
            {
                "diaSourceId": source_id if j == index else point_id(object_id, j),
                "visit": round(mjd * 86400.0),  # exposure id: derived from the exposure time [s]
                "detector": 0,
                "diaObjectId": dia_object_id,
                "midpointMjdTai": mjd,
                "ra": ra,
                "raErr": None,
                "dec": dec,
                "decErr": None,
                "x": 0.0,
                "y": 0.0,
                "isNegative": difference < 0,
                "snr": abs(difference) / error,
                "psfFlux": difference,
                "psfFluxErr": error,
                "psfNdata": 0,
                "psfFlux_flag": False,
                "trailNdata": 0,
                "dipoleNdata": 0,
                "scienceFlux": science,
                "scienceFluxErr": error,
                "forced_PsfFlux_flag": False,
                "templateFlux": template[bands[j]],
                "templateFluxErr": None,
                "extendedness": None,
                "reliability": None,
                "band": bands[j],
                "timeProcessedMjdTai": mjd + _PROCESSING_DELAY_DAYS,
                "timeWithdrawnMjdTai": None,
                "bboxSize": 0,
            }
            | {name: False for name in LSST_FLAGS[1:]}
        )

    counts = {b: sum(bands[j] == b for j in chosen) for b in LSST_BANDS}
    dia_object = {
        "diaObjectId": dia_object_id,
        "validityStartMjdTai": t0,
        "ra": ra,
        "dec": dec,
        **{f"{b}_psfFluxNdata": counts[b] for b in LSST_BANDS},
        "firstDiaSourceMjdTai": float(lc.mjd[chosen[0]]),
        "lastDiaSourceMjdTai": t0,
        "nDiaSources": len(chosen),
    }
    return {
        "diaSourceId": source_id,
        "observation_reason": None,
        "target_name": None,
        "diaSource": source(index),
        "prvDiaSources": [source(j) for j in history] or None,
        "diaObject": dia_object,
    }


@cache
def builtin_resolver() -> SchemaResolver:
    """A resolver of the schemas installed with varstream (no folders, no registry), shared per process."""
    return SchemaResolver()


def encode_lsst(alert: dict, schema_id: int = VARSTREAM_LSST_SCHEMA_ID) -> bytes:
    """Confluent wire-format message of an LSST alert dict, written with the local schema `schema_id`.

    The default is varstream's LSST-like schema; an official id (e.g. 1100) writes with that official
    schema (fields it has and the dict lacks take their defaults). ValueError when the dict does not fit.
    """
    try:
        schema = builtin_resolver().schema(schema_id)
    except DecodeError as exc:
        raise ValueError(f"cannot encode with schema id {schema_id}: {exc}") from exc
    body = io.BytesIO()
    body.write(wire_header(schema_id))
    try:
        fastavro.schemaless_writer(body, schema, alert)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise ValueError(f"alert does not fit schema id {schema_id}: {exc}") from exc
    return body.getvalue()


def write_schema_folder(path: Path | str) -> Path:
    """Write varstream's LSST-like schema as `<path>/<VARSTREAM_LSST_SCHEMA_ID>.avsc` (a resolver folder)."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{VARSTREAM_LSST_SCHEMA_ID}.avsc"
    target.write_text(schemas.path("lsst_alert").read_text())
    return target
