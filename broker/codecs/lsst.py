"""LSST alerts: decode (Confluent wire format) into `Alert`; build and encode LSST-like alerts for replay.

Reads every official lsst-alert-packet schema by field name (diaSource / prvDiaSources) and varstream's
LSST-like subset of lsst.v11_0. Total magnitudes come from `scienceFlux` (forced PSF flux on the direct
image, nJy; `totFlux` in schemas up to 4.x): AB mag = 31.4 - 2.5 log10(f), magerr = 1.0857 σ/f.
`psfFlux` is a difference flux and is never used as a magnitude: schemas without a total flux (6.x, 7.x)
give DecodeError("missing_field"). Time: midpointMjdTai (TAI). Band: `band` (`filterName` up to 4.x).

Per diaSource, in this order of precedence (diaSources are detections, so there are no upper limits):
  non_finite         time, scienceFlux, scienceFluxErr or band is null, NaN or inf
  bad_error          scienceFluxErr <= 0
  flagged            any of LSST_FLAGS is true, or the source was withdrawn (timeWithdrawnMjdTai set)
  non_positive_flux  scienceFlux <= 0
The object is diaSource.diaObjectId, else diaObject.diaObjectId (missing_field when both are null).
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
)
from broker.codecs.resolver import VARSTREAM_LSST_SCHEMA_ID, SchemaResolver, split_wire, wire_header
from broker.errors import DecodeError
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
_TIME_FIELDS = ("midpointMjdTai", "midPointTai")
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


def _field_name(source: dict, candidates: tuple[str, ...], origin: str) -> str:
    for name in candidates:
        if name in source:
            return name
    raise DecodeError("missing_field", f"LSST diaSource ({origin}) has no {' / '.join(candidates)} field")


def lsst_record_to_alert(record: dict, origin: str = "record") -> Alert:
    """Alert from a decoded LSST alert record (dict as fastavro reads it); `origin` names it in errors."""
    try:
        source = record["diaSource"]
        points = [source, *(record.get("prvDiaSources") or ())]
        alert_id = source["diaSourceId"]
    except (KeyError, TypeError) as exc:
        raise DecodeError(
            "missing_field", f"LSST alert ({origin}) lacks field {exc} (is it an LSST alert?)"
        ) from exc
    time_name = _field_name(source, _TIME_FIELDS, origin)
    flux_name = _field_name(source, _FLUX_FIELDS, origin)
    band_name = _field_name(source, _BAND_FIELDS, origin)
    error_name = _field_name(source, (flux_name + "Err",), origin)
    object_id = source.get("diaObjectId")
    if object_id is None:
        object_id = (record.get("diaObject") or {}).get("diaObjectId")
    if object_id is None or alert_id is None:
        raise DecodeError("missing_field", f"LSST alert ({origin}) has no diaObjectId (solar-system source?)")

    n = len(points)
    mjd = as_float_array([p[time_name] for p in points])
    if not np.isfinite(mjd[0]):
        raise DecodeError("missing_field", f"LSST alert ({origin}) diaSource {alert_id} has no {time_name}")
    flux = as_float_array([p[flux_name] for p in points])
    flux_err = as_float_array([p[error_name] for p in points])
    bands = [p[band_name] for p in points]
    flags = [name for name in LSST_FLAGS if name in source]
    flagged = np.array(
        [
            p.get("timeWithdrawnMjdTai") is not None or any(p.get(name) is True for name in flags)
            for p in points
        ]
    )
    mag, magerr = flux_to_mag(flux, flux_err)
    with np.errstate(invalid="ignore"):
        keep, dropped = apply_cuts(
            [
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
