"""Alert and annotation codecs: Avro bytes ↔ `broker.alerts.Alert` and annotation dicts.

decode(payload, fmt, resolver) picks the codec; decode_ztf / decode_lsst are the two input formats;
build_*/encode_* make alerts for `varstream replay`; encode/decode_annotation serve the output topic.
"""

from broker.codecs.annotations import decode_annotation, encode_annotation, validate_annotation
from broker.codecs.dispatch import FORMATS, decode, decode_container
from broker.codecs.ids import lsst_object_id, point_id
from broker.codecs.lsst import (
    LSST_FLAGS,
    build_lsst_alert,
    builtin_resolver,
    decode_lsst,
    encode_lsst,
    lsst_record_to_alert,
    write_schema_folder,
)
from broker.codecs.resolver import VARSTREAM_LSST_SCHEMA_ID, SchemaResolver, official_schema_id
from broker.codecs.ztf import build_ztf_alert, decode_ztf, encode_ztf, ztf_record_to_alert

__all__ = [
    "FORMATS",
    "LSST_FLAGS",
    "VARSTREAM_LSST_SCHEMA_ID",
    "SchemaResolver",
    "build_lsst_alert",
    "build_ztf_alert",
    "builtin_resolver",
    "decode",
    "decode_annotation",
    "decode_container",
    "decode_lsst",
    "decode_ztf",
    "encode_annotation",
    "encode_lsst",
    "encode_ztf",
    "lsst_object_id",
    "lsst_record_to_alert",
    "official_schema_id",
    "point_id",
    "validate_annotation",
    "write_schema_folder",
    "ztf_record_to_alert",
]
