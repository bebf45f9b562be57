"""Annotation records: exact round trip, readable by any Avro reader, and invalid records named."""

from __future__ import annotations

import io

import fastavro
import pytest

import schemas
from broker.codecs import decode_annotation, encode_annotation
from broker.errors import DecodeError

ADDED_AFTER_1_0 = ("period_runner_up_days", "fold_period_days")  # 1.1, 1.2: optional, default null


def annotation(**overrides) -> dict:
    record = {
        "objectId": "ZTF18abcdefg",
        "alertId": "1234567890123",
        "survey": "ztf",
        "mjd": 60123.456789,
        "n_points": 212,
        "bands": ["g", "r"],
        "baseline_days": 812.5,
        "period_days": 0.5673421,
        "period_power": 0.83,
        "period_significance": 1.2e-12,
        "period_runner_up_days": 1.1346842,
        "fold_period_days": 0.5673421,
        "class_names": ["RRab", "RRc", "Cepheid", "EB"],
        "probabilities": [0.91, 0.05, 0.03, 0.01],
        "predicted_class": "RRab",
        "predicted_probability": 0.91,
        "novelty_energy": 4.2,
        "novelty_percentile": 63.0,
        "is_novel": False,
        "model_name": "itcn-ogle3",
        "model_version": "1.0.0",
        "novelty_model_name": "aegmm-asassn",
        "novelty_model_version": "1.0.0",
        "windows_used": 3,
        "alert_timestamp_ms": 1_700_000_000_123,
        "annotated_at_ms": 1_700_000_001_456,
        "schema_version": "1.2",
    }
    return record | overrides


def schema_1_0() -> dict:
    """The annotation schema as it was before period_runner_up_days and fold_period_days (1.0)."""
    schema = schemas.load("annotation")
    return schema | {"fields": [f for f in schema["fields"] if f["name"] not in ADDED_AFTER_1_0]}


@pytest.mark.parametrize(
    "record",
    [
        annotation(),
        annotation(
            novelty_energy=None,
            novelty_percentile=None,
            is_novel=None,
            novelty_model_name=None,
            novelty_model_version=None,
            period_runner_up_days=None,
            fold_period_days=None,
        ),
    ],
    ids=["with-novelty", "without-novelty-or-runner-up"],
)
def test_round_trip_is_exact(record):
    assert decode_annotation(encode_annotation(record)) == record


def test_any_avro_reader_reads_it_without_a_registry():
    payload = encode_annotation(annotation())
    reader = fastavro.reader(io.BytesIO(payload))
    assert reader.writer_schema["name"] == "varstream.annotation"
    assert list(reader) == [annotation()]
    assert len(payload) < 2500  # the header carries the schema without docs


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({k: v for k, v in annotation().items() if k != "period_days"}, "period_days"),
        (annotation(colour="blue"), "colour"),
        (annotation(period_days="0.5"), "period_days"),
        (annotation(n_points=3.5), "n_points"),
        (annotation(objectId=None), "objectId"),
        (annotation(bands=["g", 1]), "bands"),
        (annotation(period_power=float("nan")), "period_power"),
        (annotation(probabilities=[0.9, 0.1]), "probabilities"),
        (annotation(probabilities=[1.5, -0.5, 0.0, 0.0]), "probabilities"),
        (annotation(predicted_class="Mira"), "predicted_class"),
        (annotation(predicted_probability=1.2), "predicted_probability"),
        (annotation(period_significance=-0.1), "period_significance"),
    ],
)
def test_invalid_records_name_the_field(record, field):
    with pytest.raises(ValueError, match=field):
        encode_annotation(record)


def test_bytes_that_are_not_one_annotation_are_a_decode_error():
    with pytest.raises(DecodeError):
        decode_annotation(b"nope")
    two = io.BytesIO()
    fastavro.writer(
        two, fastavro.reader(io.BytesIO(encode_annotation(annotation()))).writer_schema, [annotation()] * 2
    )
    with pytest.raises(DecodeError, match="2 records"):
        decode_annotation(two.getvalue())


def test_old_readers_read_new_records_and_the_new_reader_reads_old_ones():
    new_record = annotation()
    old_reader = fastavro.reader(io.BytesIO(encode_annotation(new_record)), reader_schema=schema_1_0())
    assert list(old_reader) == [{k: v for k, v in new_record.items() if k not in ADDED_AFTER_1_0}]

    old_record = {k: v for k, v in annotation(schema_version="1.0").items() if k not in ADDED_AFTER_1_0}
    written_by_1_0 = io.BytesIO()
    fastavro.writer(written_by_1_0, fastavro.parse_schema(schema_1_0()), [old_record])
    assert decode_annotation(written_by_1_0.getvalue()) == old_record | dict.fromkeys(ADDED_AFTER_1_0)
    resolved = fastavro.reader(
        io.BytesIO(written_by_1_0.getvalue()), reader_schema=schemas.load("annotation")
    )
    assert list(resolved) == [old_record | dict.fromkeys(ADDED_AFTER_1_0)]
    assert encode_annotation(old_record)  # a producer still on 1.0 fields writes valid 1.2 records
