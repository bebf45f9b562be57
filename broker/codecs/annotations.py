"""Annotation records ↔ bytes: one-record Avro containers (schema inside) of `schemas/annotation.avsc`.

Any consumer reads them without a registry (`fastavro.reader`, Spark's avro, ...). Records are checked
before encoding, so a bad one fails here, naming the field, rather than in a consumer.
"""

from __future__ import annotations

import math
from functools import cache

from fastavro.validation import ValidationError, validate

import schemas
from broker.codecs.container import ContainerWriter, read_container
from broker.errors import DecodeError

# Fields whose value is a probability and must lie in [0, 1].
_PROBABILITY_FIELDS = ("predicted_probability", "period_significance")


@cache
def _writer() -> ContainerWriter:
    return ContainerWriter(schemas.load("annotation"))


@cache
def _fields() -> dict[str, dict]:
    return {f["name"]: f for f in schemas.load("annotation")["fields"]}


def validate_annotation(record: dict) -> None:
    """ValueError naming the first field that is missing, unknown, of the wrong type or out of range."""
    fields = _fields()
    for name, spec in fields.items():
        if name not in record and "default" not in spec:
            raise ValueError(f"annotation field {name!r} is missing")
    unknown = sorted(record.keys() - fields.keys())
    if unknown:
        raise ValueError(f"annotation field(s) {unknown} are not in the annotation schema")
    try:
        validate(record, schemas.load("annotation"), raise_errors=True)
    except ValidationError as exc:
        first = exc.errors[0]
        name = str(first.field).rsplit(".", 1)[-1]
        raise ValueError(
            f"annotation field {name!r} = {first.datum!r} does not fit Avro type {first.schema}"
        ) from exc
    for name, value in record.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"annotation field {name!r} is not finite: {value}")
    for name in _PROBABILITY_FIELDS:
        if not 0.0 <= record[name] <= 1.0:
            raise ValueError(f"annotation field {name!r} = {record[name]} is not a probability in [0, 1]")
    names, probabilities = record["class_names"], record["probabilities"]
    if len(names) != len(probabilities):
        raise ValueError(
            f"annotation field 'probabilities' has {len(probabilities)} values for {len(names)} class_names"
        )
    bad = [p for p in probabilities if not (isinstance(p, (int, float)) and 0.0 <= p <= 1.0)]
    if bad:
        raise ValueError(f"annotation field 'probabilities' holds non-probabilities {bad[:3]}")
    if record["predicted_class"] not in names:
        raise ValueError(
            f"annotation field 'predicted_class' = {record['predicted_class']!r} is not in class_names"
        )


def encode_annotation(record: dict) -> bytes:
    """One-record Avro container of an annotation dict; ValueError naming the bad field."""
    validate_annotation(record)
    return _writer().encode(record)


def decode_annotation(payload: bytes) -> dict:
    """The annotation dict of `encode_annotation`'s bytes; DecodeError when they are not one annotation.

    Records written with an older schema get this schema's defaults for the fields they lack (Avro
    schema resolution: optional fields are added with default null), so readers see one shape."""
    records = read_container(payload)
    if len(records) != 1:
        raise DecodeError(
            "undecodable", f"Avro container holds {len(records)} records; expected one annotation"
        )
    return _defaults() | records[0]


@cache
def _defaults() -> dict:
    return {name: spec["default"] for name, spec in _fields().items() if "default" in spec}
