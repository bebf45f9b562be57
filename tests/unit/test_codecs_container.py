"""Avro containers as brokers and tools write them: every codec of the Avro spec, records rewritten by
Spark-like tools, and hostile containers (decompression bombs, unbounded schemas) that must fail fast
and small."""

from __future__ import annotations

import io
import tracemalloc
import zlib

import fastavro
import numpy as np
import pytest

from broker.codecs import decode
from broker.codecs.compression import CODECS, MAX_BLOCK_BYTES
from broker.codecs.container import SYNC_MARKER, read_container, write_long
from broker.errors import DecodeError, UnusableAlert
from tests.fixtures.alert_samples import all_messages, ztf_messages

ZTF = ztf_messages()
# What each real sample is (see ../shared/data/alert_samples/README.txt), and so what it must give.
EXPECTED = {
    "ztf_alerce_apf/820128985115015000.avro": "no_reference_source",  # distnr 5.4 px: another star
    "ztf_alerce_apf/820128985315015000.avro": "no_reference_source",
    "ztf_alerce_apf/820128985415010010.avro": "no_usable_points",  # rb 0.27-0.4: likely bogus
    "ztf_alerce_apf/820128985515010010.avro": "no_usable_points",
    "ztf_alerce_apf/820128985515010020.avro": "no_usable_points",
    "ztf_alerce_apf/820128985815015000.avro": "no_usable_points",
    "ztf_fp_hists/2454460970015010006.avro": 6,  # 3 detections + 4 forced points, one shared epoch
    "ztf_official/1661382530015060001.avro": 24,  # forced-photometry history (no magpsf in it)
    "ztf_official/2019_01_10_739260766315010006.avro": 19,
    "ztf_official/472263571115115000.avro": 1,  # history of upper limits only: the candidate alone
    "ztf_official/forcedphot_test_1660293514215020000.avro": 19,
    "lsst_lasair/dp02/1998903343203755338.json": 55,  # forced photometry on the direct image
    "lsst_lasair/schema10.0/alert.json": "no_total_flux",  # scienceFlux 0 ± 0 placeholders
    "lsst_lasair/schema10.0.A/alert.json": "no_total_flux",
    "lsst_lasair/schema7.0/alert.json": "no_total_flux",  # 7.x: difference fluxes only
    "lsst_lasair/schema7.0/fakeAlert.avro": "no_total_flux",
    "lsst_lasair/schema7.1/alert.json": "no_total_flux",
    "lsst_lasair/schema7.4.A/alert.json": "no_total_flux",
    "lsst_lasair/schema9.0/alert.json": "no_total_flux",
    "lsst_lasair/schema9.0.A/alert.json": "no_total_flux",
    "lsst_lasair/schema9.0.B/alert.json": "no_total_flux",
    "lsst_lasair/simple/alert.json": "no_total_flux",
}


def test_each_real_sample_is_annotatable_or_skipped_for_its_reason_never_dead_lettered():
    got = {}
    for name, payload in all_messages().items():
        try:
            got[name] = decode(payload).n_points
        except UnusableAlert as exc:
            got[name] = exc.reason
    assert got == EXPECTED


USABLE = "ztf_official/2019_01_10_739260766315010006.avro"  # a variable star, 19 usable points
FORCED = "ztf_fp_hists/2454460970015010006.avro"  # schema 4.01 with fp_hists


def outcome(payload: bytes):
    """What the decoder makes of a message: the alert's content, or the skip reason."""
    try:
        a = decode(payload)
    except UnusableAlert as exc:
        return ("skipped", exc.reason, exc.dropped)
    lc = a.lightcurve
    return (a.object_id, a.alert_id, a.mjd, dict(a.dropped), lc.mjd.tolist(), lc.mag.tolist(), list(lc.band))


def rewrite(payload: bytes, codec: str = "null", schema=None, transform=lambda r: r) -> bytes:
    reader = fastavro.reader(io.BytesIO(payload))
    records = [transform(r) for r in reader]
    out = io.BytesIO()
    fastavro.writer(out, schema or reader.writer_schema, records, codec=codec)
    return out.getvalue()


@pytest.mark.parametrize("codec", CODECS)
def test_every_avro_codec_decodes_every_real_ztf_alert_as_the_original(codec):
    for name, payload in ZTF.items():
        again = rewrite(payload, codec)
        assert fastavro.reader(io.BytesIO(again)).metadata["avro.codec"] == codec
        assert outcome(again) == outcome(payload), name


def _spark_style(schema, namespace: str = "spark_schema"):
    """Every record renamed into another namespace, every field a union with null, as Spark writes."""
    if isinstance(schema, dict) and schema.get("type") == "record":
        fields = []
        for f in schema["fields"]:
            inner = _spark_style(f["type"], namespace)
            branches = inner if isinstance(inner, list) else [inner]
            fields.append({"name": f["name"], "type": ["null", *[b for b in branches if b != "null"]]})
        return {"type": "record", "name": f"{schema['name'].split('.')[-1]}_rw", "namespace": namespace,
                "fields": fields}  # fmt: skip
    if isinstance(schema, dict) and schema.get("type") == "array":
        return {"type": "array", "items": _spark_style(schema["items"], namespace)}
    if isinstance(schema, list):
        return [_spark_style(s, namespace) for s in schema]
    if isinstance(schema, dict) and "type" in schema and not isinstance(schema["type"], str):
        return _spark_style(schema["type"], namespace)
    if isinstance(schema, str) and "." in schema:  # a reference to a record defined earlier: renamed too
        return f"{namespace}.{schema.split('.')[-1]}_rw"
    return schema


@pytest.mark.parametrize("name", [USABLE, FORCED])
def test_a_spark_style_rewritten_ztf_record_decodes_as_the_original(name):
    payload = ZTF[name]
    writer = fastavro.reader(io.BytesIO(payload)).writer_schema
    raw = {k: v for k, v in writer.items() if not k.startswith("__")}
    schema = _spark_style(raw)
    top = schema["fields"]
    schema["fields"] = [f for f in top if f["name"] != "candid"] + [
        {"name": "ingested_by", "type": ["null", "string"]}
    ]
    assert schema["name"] != writer["name"] and all(f["type"][0] == "null" for f in schema["fields"])

    def transform(record):
        return {k: v for k, v in record.items() if k != "candid"} | {"ingested_by": "spark"}

    rewritten = rewrite(payload, "snappy", schema, transform)
    assert "candid" not in next(fastavro.reader(io.BytesIO(rewritten)))
    assert outcome(rewritten) == outcome(payload)
    assert outcome(rewritten)[1] == str(next(fastavro.reader(io.BytesIO(payload)))["candidate"]["candid"])


def test_forced_photometry_gives_total_magnitudes_from_reference_plus_difference_flux():
    record = next(fastavro.reader(io.BytesIO(ZTF[FORCED])))
    usable = [p for p in record["fp_hists"] if p["procstatus"] == "0"]
    detected = {p["jd"] for p in [record["candidate"], *record["prv_candidates"]] if p["magpsf"] is not None}
    alert = decode(ZTF[FORCED])
    for p in usable:
        dc = 10 ** (-0.4 * p["magnr"]) + p["forcediffimflux"] * 10 ** (-0.4 * p["magzpsci"])
        (i,) = np.flatnonzero(np.isclose(alert.lightcurve.mjd, p["jd"] - 2400000.5, atol=1e-9, rtol=0))
        if p["jd"] in detected:  # the detection's PSF photometry wins; forced photometry agrees with it
            assert alert.lightcurve.mag[i] == pytest.approx(-2.5 * np.log10(dc), abs=0.01)
        else:
            assert alert.lightcurve.mag[i] == pytest.approx(-2.5 * np.log10(dc), abs=1e-9)
    assert alert.dropped["flagged"] == len(record["fp_hists"]) - len(usable)  # procstatus 61: failed


BYTES_SCHEMA = {"type": "record", "name": "blob", "fields": [{"name": "data", "type": "bytes"}]}


@pytest.mark.parametrize("codec", [c for c in CODECS if c != "null"])
def test_a_block_that_expands_beyond_the_cap_is_refused(codec):
    payload = rewrite(
        _one_record_container(BYTES_SCHEMA, {"data": bytes(2 << 20)}), codec
    )  # 2 MiB of zeros: a few KB compressed
    assert len(payload) < 200_000
    with pytest.raises(DecodeError, match="beyond") as err:
        read_container(payload, max_block_bytes=1 << 20)
    assert err.value.reason == "undecodable"
    assert read_container(payload, max_block_bytes=4 << 20)[0]["data"] == bytes(2 << 20)


def _one_record_container(schema, record) -> bytes:
    out = io.BytesIO()
    fastavro.writer(out, schema, [record])
    return out.getvalue()


def test_a_deflate_bomb_of_256_mib_fails_within_the_default_cap():
    declared = 256 << 20
    deflate = zlib.compressobj(wbits=-15)
    chunks = [deflate.compress(write_long(declared))]
    zeros = bytes(1 << 20)
    chunks += [deflate.compress(zeros) for _ in range(declared >> 20)]
    body = b"".join(chunks) + deflate.flush()
    header = io.BytesIO()
    fastavro.writer(header, BYTES_SCHEMA, [], codec="deflate", sync_marker=SYNC_MARKER)
    bomb = header.getvalue() + write_long(1) + write_long(len(body)) + body + SYNC_MARKER
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError, match="beyond"):
            decode(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.25 * MAX_BLOCK_BYTES + (8 << 20)  # the cap, not the 256 MiB it declares


def test_an_array_of_zero_byte_items_is_refused_before_reading():
    nulls = {"type": "array", "items": "null"}
    schema = {"type": "record", "name": "x", "fields": [{"name": "a", "type": nulls}]}
    header = io.BytesIO()
    fastavro.writer(header, schema, [], sync_marker=SYNC_MARKER)
    body = write_long(1 << 62) + write_long(0)  # 2^62 nulls, zero bytes each
    payload = header.getvalue() + write_long(1) + write_long(len(body)) + body + SYNC_MARKER
    with pytest.raises(DecodeError) as err:
        read_container(payload)
    assert err.value.reason == "schema_invalid"


def test_a_huge_declared_string_length_fails_without_allocating_it():
    header = io.BytesIO()
    fastavro.writer(header, BYTES_SCHEMA, [], sync_marker=SYNC_MARKER)
    body = write_long(1 << 60) + b"abc"
    payload = header.getvalue() + write_long(1) + write_long(len(body)) + body + SYNC_MARKER
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError):
            read_container(payload)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_an_unknown_codec_and_a_block_count_above_the_limit_are_undecodable():
    good = _one_record_container(BYTES_SCHEMA, {"data": b"x"})
    odd = good.replace(b"\x08null", b"\x08lzma", 1)
    with pytest.raises(DecodeError, match="lzma") as err:
        read_container(odd)
    assert err.value.reason == "undecodable"
    three = io.BytesIO()
    fastavro.writer(three, BYTES_SCHEMA, [{"data": b"x"}] * 3)
    with pytest.raises(DecodeError, match="at most 1"):
        read_container(three.getvalue())
    assert len(read_container(three.getvalue(), max_records=3)) == 3
