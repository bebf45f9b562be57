"""Decode only the triggering source of an alert when the store already holds the object's history.

A ZTF alert repeats 30 days of history, an LSST alert 12 months (~300 sources, ~10 ms to decode); for an
object this instance already follows, all of it is in the light-curve store. `decode_trigger` reads a
message only up to its triggering source (ZTF: candidate; LSST: diaSource) with a writer schema cut after
that field (`container.truncated_schema`), and returns that point alone. The caller asks its
`wants_history(object_id, n_detections)` predicate whether to decode the whole message anyway (a new
object, a gap, a periodic reconciliation: broker/history.py).

The trigger cannot stand alone, and the whole message is decoded, when the prefix lacks the object id
(LSST alerts whose diaSource.diaObjectId is null keep it in diaObject, after the history) or when the
triggering point itself is unusable (then only the history could make the alert usable). The lazy path
does not check the bytes after the trigger; a message whose tail is corrupt is caught at the next full
read of that object.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import fastavro

from broker.alerts import Alert
from broker.codecs.container import MAGIC, read_container, truncated_schema
from broker.codecs.lsst import lsst_record_to_alert
from broker.codecs.resolver import WIRE_HEADER_SIZE, WIRE_MAGIC, SchemaResolver, split_wire
from broker.codecs.ztf import ztf_record_to_alert
from broker.errors import DecodeError, UnusableAlert

ZTF_TRIGGER_FIELDS = frozenset({"objectId", "candid", "candidate"})
LSST_TRIGGER_FIELDS = frozenset({"diaSource"})
# (object_id, n_detections) -> decode the whole message? n_detections: ZTF candidate.ndethist, else None.
WantsHistory = Callable[[str, "int | None"], bool]

_LSST_PREFIX: dict[int, tuple[dict, dict | None]] = {}  # id(writer schema) -> (it, its prefix schema)


@dataclass(frozen=True)
class Trigger:
    """The triggering point of a message as an Alert of one point, and the survey's detection count."""

    alert: Alert
    n_detections: int | None


def decode_trigger(payload: bytes, fmt: str, resolver: SchemaResolver) -> Trigger | None:
    """The trigger alone, or None when it cannot stand alone (decode the whole message then).

    Raises DecodeError for bytes that are not an alert even in their prefix.
    """
    if fmt in ("auto", "ztf") and payload[:4] == MAGIC:
        return _container_trigger(payload)
    if fmt in ("auto", "lsst") and payload[:1] == bytes([WIRE_MAGIC]):
        return _wire_trigger(payload, resolver)
    return None


def _container_trigger(payload: bytes) -> Trigger | None:
    records = read_container(payload, prefix_fields=ZTF_TRIGGER_FIELDS | LSST_TRIGGER_FIELDS)
    if len(records) != 1 or not isinstance(records[0], dict):
        return None
    record = records[0]
    if "diaSource" in record:
        return _standalone(lambda: lsst_record_to_alert(record, "Avro container"), None)
    candidate = record.get("candidate")
    ndethist = candidate.get("ndethist") if isinstance(candidate, dict) else None
    return _standalone(lambda: ztf_record_to_alert(record), ndethist if isinstance(ndethist, int) else None)


def _wire_trigger(payload: bytes, resolver: SchemaResolver) -> Trigger | None:
    schema = resolver.schema(split_wire(payload))
    cached = _LSST_PREFIX.get(id(schema))
    if cached is None or cached[0] is not schema:
        cached = _LSST_PREFIX[id(schema)] = (schema, truncated_schema(schema, LSST_TRIGGER_FIELDS))
    prefix = cached[1]
    if prefix is None:
        return None
    try:
        record = fastavro.schemaless_reader(io.BytesIO(payload[WIRE_HEADER_SIZE:]), prefix, None)
    except Exception:  # let the full decode name the fault
        return None
    return _standalone(lambda: lsst_record_to_alert(record, "wire format"), None)


def _standalone(to_alert: Callable[[], Alert], n_detections: int | None) -> Trigger | None:
    try:
        alert = to_alert()
    except (DecodeError, UnusableAlert):
        return None  # the object id or a usable trigger lies beyond the prefix: decode it all
    return Trigger(alert, n_detections)
