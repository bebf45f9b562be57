"""One entry point for every input message: pick the codec by format or by the leading bytes."""

from __future__ import annotations

from broker.alerts import Alert
from broker.codecs.container import MAGIC, read_container
from broker.codecs.lazy import WantsHistory, decode_trigger
from broker.codecs.lsst import builtin_resolver, decode_lsst, lsst_record_to_alert
from broker.codecs.resolver import WIRE_MAGIC, SchemaResolver
from broker.codecs.ztf import decode_ztf, ztf_record_to_alert
from broker.errors import DecodeError

FORMATS = ("auto", "ztf", "lsst")


def decode(
    payload: bytes,
    fmt: str = "auto",
    resolver: SchemaResolver | None = None,
    wants_history: WantsHistory | None = None,
) -> Alert:
    """Alert from one Kafka message value.

    fmt "ztf": Avro container (ZTF); "lsst": Confluent wire format; "auto": `Obj\\x01` → container, whose
    record is read as ZTF (has `candidate`) or LSST (has `diaSource`); 0x00 → wire format.
    `resolver` resolves wire-format schema ids (default: the schemas installed with varstream).
    Raises DecodeError (not a valid alert: dead-letter it, reason in broker.metrics.DEAD_LETTER_REASONS)
    or UnusableAlert (a valid alert with nothing usable: skip it, reason in alerts.UNUSABLE_REASONS).
    With `wants_history`, the triggering source is decoded first and the history only when the predicate
    asks for it (see broker.codecs.lazy); the Alert's `history` says which ("read" / "skipped").
    """
    if wants_history is not None:
        trigger = decode_trigger(payload, fmt, resolver or builtin_resolver())
        if trigger is not None and not wants_history(trigger.alert.object_id, trigger.n_detections):
            trigger.alert.history = "skipped"
            return trigger.alert
        alert = decode(payload, fmt, resolver)
        alert.history = "read"
        return alert
    if fmt == "ztf":
        return decode_ztf(payload)
    if fmt == "lsst":
        return decode_lsst(payload, resolver or builtin_resolver())
    if fmt != "auto":
        raise ValueError(f"unknown alert format {fmt!r}; known: {', '.join(FORMATS)}")
    if payload[:4] == MAGIC:
        return decode_container(payload)
    if payload[:1] == bytes([WIRE_MAGIC]):
        return decode_lsst(payload, resolver or builtin_resolver())
    raise DecodeError(
        "undecodable", f"neither an Avro container nor wire format: starts with {payload[:5]!r}"
    )


def decode_container(payload: bytes) -> Alert:
    """Alert from a one-record Avro container holding a ZTF or an LSST alert (told apart by its fields)."""
    records = read_container(payload)
    if len(records) != 1:
        raise DecodeError("undecodable", f"Avro container holds {len(records)} records; expected one alert")
    record = records[0]
    if isinstance(record, dict) and "diaSource" in record:
        return lsst_record_to_alert(record, "Avro container")
    return ztf_record_to_alert(record)
