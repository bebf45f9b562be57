"""LSST codec: nJy → AB magnitudes, round trips through the replay builder, the official lsst-alert-packet
sample alerts of every installed version, quality cuts, and the dead-letter reason of each bad message."""

from __future__ import annotations

import io
import json
import math

import fastavro
import numpy as np
import pytest

import schemas
from broker.codecs import (
    LSST_FLAGS,
    VARSTREAM_LSST_SCHEMA_ID,
    SchemaResolver,
    build_lsst_alert,
    builtin_resolver,
    decode,
    decode_lsst,
    encode_lsst,
    lsst_object_id,
    lsst_record_to_alert,
    point_id,
    write_schema_folder,
)
from broker.codecs.resolver import official_schema_files, wire_header
from broker.errors import DecodeError, UnusableAlert
from models.lightcurve import LightCurve

OFFICIAL = official_schema_files()
# Versions whose diaSource has a total flux (scienceFlux, or totFlux up to 4.x); 6.x and 7.x carry only
# difference fluxes, so their alerts cannot give total magnitudes.
WITHOUT_TOTAL_FLUX = {600, 601, 700, 701, 702, 703, 704}


def periodic_lightcurve(n: int = 150, bands=("g", "r", "i"), seed: int = 5) -> LightCurve:
    rng = np.random.default_rng(seed)
    mjd = np.sort(60600.0 + rng.uniform(0.0, 500.0, n))
    mag = 19.0 + 0.8 * np.sin(2 * np.pi * mjd / 0.43) + rng.normal(0.0, 0.02, n)
    return LightCurve.from_arrays(mjd, mag, rng.uniform(0.01, 0.1, n), rng.choice(list(bands), n))


def reason_of(payload: bytes, resolver: SchemaResolver | None = None) -> str:
    with pytest.raises(DecodeError) as err:
        decode_lsst(payload, resolver or builtin_resolver())
    return err.value.reason


def test_installed_official_schemas_7_to_11_are_known_under_major_100_plus_minor():
    assert {700, 701, 702, 703, 704, 800, 900, 1000, 1100} <= set(OFFICIAL)
    assert set(OFFICIAL) | {VARSTREAM_LSST_SCHEMA_ID} <= set(SchemaResolver().local_ids)
    assert VARSTREAM_LSST_SCHEMA_ID not in OFFICIAL and VARSTREAM_LSST_SCHEMA_ID > 100 * 100


@pytest.mark.parametrize("schema_id", [VARSTREAM_LSST_SCHEMA_ID, 1101, 1100, 1000, 900])
def test_round_trip_build_encode_decode(schema_id):
    lc = periodic_lightcurve()
    index = 120
    alert = build_lsst_alert("OGLE-BLG-RRLYR-01234", point_id("OGLE-BLG-RRLYR-01234", index), lc, index)
    payload = encode_lsst(alert, schema_id)
    assert payload[:5] == wire_header(schema_id)
    decoded = decode(payload)

    window = (lc.mjd <= lc.mjd[index]) & (lc.mjd >= lc.mjd[index] - 365.0)
    assert decoded.survey == "lsst"
    assert decoded.object_id == str(lsst_object_id("OGLE-BLG-RRLYR-01234"))
    assert decoded.alert_id == str(point_id("OGLE-BLG-RRLYR-01234", index))
    assert decoded.mjd == lc.mjd[index] and not decoded.dropped
    np.testing.assert_array_equal(decoded.lightcurve.mjd, lc.mjd[window])
    np.testing.assert_allclose(decoded.lightcurve.mag, lc.mag[window], atol=1e-6)
    np.testing.assert_allclose(decoded.lightcurve.magerr, lc.magerr[window], rtol=1e-6)
    assert decoded.lightcurve.band.tolist() == lc.band[window].tolist()


def test_fluxes_are_njy_with_a_template_fixed_per_band():
    lc = periodic_lightcurve()
    templates: dict[str, set] = {}
    for index in (60, 100, 149):
        alert = build_lsst_alert("7", 1, lc, index)
        for s in [alert["diaSource"], *alert["prvDiaSources"]]:
            templates.setdefault(s["band"], set()).add(s["templateFlux"])
            assert s["psfFlux"] == pytest.approx(s["scienceFlux"] - s["templateFlux"])
            assert s["diaObjectId"] == 7
    assert all(len(t) == 1 for t in templates.values())
    source = build_lsst_alert("7", 1, lc, 0)["diaSource"]
    assert source["scienceFlux"] == pytest.approx(10 ** (-0.4 * (lc.mag[0] - 31.4)), rel=1e-6)
    assert source["scienceFluxErr"] == pytest.approx(lc.magerr[0] * source["scienceFlux"] / 1.0857, rel=1e-3)


def test_history_ids_are_stable_and_unique():
    lc = periodic_lightcurve()
    first = build_lsst_alert("obj", 1, lc, 100)["prvDiaSources"]
    later = build_lsst_alert("obj", 2, lc, 110)["prvDiaSources"]
    ids_first = {s["midpointMjdTai"]: s["diaSourceId"] for s in first}
    for s in later:
        if s["midpointMjdTai"] in ids_first:
            assert s["diaSourceId"] == ids_first[s["midpointMjdTai"]]
    assert len({s["diaSourceId"] for s in later}) == len(later)
    assert point_id("obj", 3) != point_id("obj2", 3)


def test_builder_rejects_non_lsst_bands():
    with pytest.raises(ValueError, match="'I'"):
        build_lsst_alert("ogle", 1, periodic_lightcurve(bands=("I", "V")), 3)


def official_sample(schema_id: int) -> dict:
    return json.loads((OFFICIAL[schema_id].parent / "sample_data" / "alert.json").read_text())


@pytest.mark.parametrize("schema_id", sorted(OFFICIAL))
def test_official_sample_alert_of_every_installed_version(schema_id):
    """The package's sample alerts carry psfFlux only (no scienceFlux field, or null): a valid alert with
    no total flux is skipped as no_total_flux (never dead-lettered), each of its points counted."""
    sample = official_sample(schema_id)
    n_points = 1 + len(sample.get("prvDiaSources") or ()) + len(sample.get("prvDiaForcedSources") or ())
    payload = encode_lsst(sample, schema_id)
    container = (OFFICIAL[schema_id].parent / "sample_data" / "fakeAlert.avro").read_bytes()
    for message in (payload, container):
        with pytest.raises(UnusableAlert) as err:
            decode(message)
        assert err.value.reason == "no_total_flux"
    assert err.value.dropped["no_total_flux"] >= 1
    with pytest.raises(UnusableAlert) as err:
        decode(payload)
    assert err.value.dropped == {"no_total_flux": n_points}


def test_a_7x_difference_flux_only_alert_round_trips_to_a_counted_skip():
    """An LSST 7.x alert built field by field (psfFlux = difference flux only) through the wire format."""
    resolver = builtin_resolver()
    sample = official_sample(701)
    record = lsst_record_to_alert  # the decoder, applied to what the wire format gives back
    payload = encode_lsst(sample, 701)
    body = fastavro.schemaless_reader(io.BytesIO(payload[5:]), resolver.schema(701), None)
    assert body["diaSource"]["psfFlux"] == sample["diaSource"]["psfFlux"]  # the round trip kept it
    assert "scienceFlux" not in body["diaSource"]
    with pytest.raises(UnusableAlert) as err:
        record(body)
    assert err.value.reason == "no_total_flux"


@pytest.mark.parametrize("schema_id", sorted(set(OFFICIAL) - WITHOUT_TOTAL_FLUX))
def test_official_sample_alert_with_total_fluxes_decodes(schema_id):
    sample = official_sample(schema_id)
    sources = [sample["diaSource"], *sample["prvDiaSources"]]
    flux_name = "scienceFlux" if schema_id >= 500 else "totFlux"  # renamed in 5.0
    for k, source in enumerate(sources):
        source[flux_name] = 1000.0 * (k + 1)
        source[flux_name + "Err"] = 10.0
    decoded = decode(encode_lsst(sample, schema_id))

    time_name = "midpointMjdTai" if schema_id >= 500 else "midPointTai"
    expected: dict[float, float] = {}  # points sharing (mjd, band) count once: the trigger's, else the first
    for k, source in enumerate(sources):
        expected.setdefault(source[time_name], 31.4 - 2.5 * math.log10(1000.0 * (k + 1)))
    assert decoded.object_id == str(sample["diaObject"]["diaObjectId"])  # diaSource.diaObjectId is null
    assert decoded.alert_id == str(sample["diaSource"]["diaSourceId"])
    assert decoded.mjd == sample["diaSource"][time_name]
    np.testing.assert_array_equal(decoded.lightcurve.mjd, sorted(expected))
    np.testing.assert_allclose(decoded.lightcurve.mag, [expected[t] for t in sorted(expected)], atol=1e-6)
    assert set(decoded.lightcurve.band) == {"r"}
    assert decoded.lightcurve.magerr.max() == pytest.approx(1.0857362 * 10.0 / 1000.0, rel=1e-6)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"scienceFlux": None}, "no_total_flux"),
        ({"scienceFlux": float("nan")}, "non_finite"),
        ({"scienceFluxErr": float("inf")}, "non_finite"),
        ({"band": None}, "non_finite"),
        ({"scienceFluxErr": 0.0}, "bad_error"),
        ({"scienceFluxErr": -1.0}, "bad_error"),
        ({"scienceFlux": 0.0}, "non_positive_flux"),
        ({"scienceFlux": -50.0}, "non_positive_flux"),
        ({"timeWithdrawnMjdTai": 60900.0}, "flagged"),
        *[({flag: True}, "flagged") for flag in LSST_FLAGS],
    ],
)
def test_bad_history_points_are_dropped_and_counted(fields, reason):
    lc = periodic_lightcurve(n=30)
    alert = build_lsst_alert("9", 99, lc, 29)
    n_history = len(alert["prvDiaSources"])
    alert["prvDiaSources"][3].update(fields)
    decoded = decode(encode_lsst(alert))
    assert decoded.dropped == {reason: 1}
    assert decoded.n_points == n_history


def test_all_points_bad_is_skipped_as_no_usable_points():
    alert = build_lsst_alert("9", 99, periodic_lightcurve(n=1), 0)
    alert["diaSource"]["scienceFlux"] = -1.0
    with pytest.raises(UnusableAlert) as err:
        decode(encode_lsst(alert))
    assert err.value.reason == "no_usable_points" and err.value.dropped == {"non_positive_flux": 1}


def test_a_solar_system_alert_is_skipped():
    alert = build_lsst_alert("9", 99, periodic_lightcurve(n=5), 4)
    alert["diaSource"] |= {"diaObjectId": None, "ssObjectId": 1234}
    alert["diaObject"] = None
    with pytest.raises(UnusableAlert) as err:
        lsst_record_to_alert(alert)
    assert err.value.reason == "solar_system_source"


def test_prv_dia_forced_sources_with_a_science_flux_join_the_light_curve():
    alert = build_lsst_alert("9", 99, periodic_lightcurve(n=5), 4)
    forced = [
        {"midpointMjdTai": 58000.0 + k, "band": "g", "scienceFlux": 2000.0, "scienceFluxErr": 20.0}
        for k in range(3)
    ]
    difference_only = {"midpointMjdTai": 57000.0, "band": "g", "psfFlux": 50.0, "psfFluxErr": 5.0}
    decoded = lsst_record_to_alert(alert | {"prvDiaForcedSources": [*forced, difference_only]})
    n_sources = 1 + len(alert["prvDiaSources"] or ())
    assert decoded.n_points == n_sources + 3 and decoded.dropped == {"no_total_flux": 1}
    np.testing.assert_allclose(decoded.lightcurve.mag[:3], 31.4 - 2.5 * math.log10(2000.0))


def test_each_kind_of_bad_message_gets_its_dead_letter_reason():
    good = encode_lsst(build_lsst_alert("9", 99, periodic_lightcurve(n=30), 29))
    assert reason_of(b"\x07" + good[1:]) == "undecodable"  # not wire format
    assert reason_of(good[:3]) == "undecodable"  # shorter than the header
    assert reason_of(good[: len(good) // 2]) == "undecodable"  # truncated body
    assert reason_of(wire_header(VARSTREAM_LSST_SCHEMA_ID) + b"\xff" * 40) == "undecodable"
    assert reason_of(good + b"\x02\x04") == "schema_invalid"  # bytes the schema does not account for
    assert reason_of(wire_header(123456) + good[5:]) == "unknown_schema"


def test_a_schema_valid_alert_without_an_object_is_missing_field():
    alert = build_lsst_alert("9", 99, periodic_lightcurve(n=5), 4)
    for source in [alert["diaSource"], *alert["prvDiaSources"]]:
        source["diaObjectId"] = None  # a solar-system source: no diaObject either
    alert["diaObject"] = None
    assert reason_of(encode_lsst(alert)) == "missing_field"


def test_a_schema_without_total_flux_is_skipped_as_no_total_flux():
    raw = json.loads(schemas.path("lsst_alert").read_text())
    source = next(f for f in raw["fields"] if f["name"] == "diaSource")["type"]
    source["fields"] = [f for f in source["fields"] if f["name"] not in ("scienceFlux", "scienceFluxErr")]
    resolver = SchemaResolver()
    resolver.register(4242, raw)
    body = io.BytesIO()
    fastavro.schemaless_writer(
        body, resolver.schema(4242), build_lsst_alert("9", 99, periodic_lightcurve(n=5), 4)
    )
    with pytest.raises(UnusableAlert) as err:
        decode_lsst(wire_header(4242) + body.getvalue(), resolver)
    assert err.value.reason == "no_total_flux" and set(err.value.dropped) == {"no_total_flux"}


def test_write_schema_folder_lets_a_plain_folder_resolver_decode(tmp_path):
    written = write_schema_folder(tmp_path / "schemas")
    assert written.name == f"{VARSTREAM_LSST_SCHEMA_ID}.avsc"
    # Another id for the same schema, as a plugin's own folder would hold it.
    (tmp_path / "schemas" / "777.avsc").write_text(written.read_text())
    resolver = SchemaResolver(folders=[tmp_path / "schemas"])
    alert = build_lsst_alert("12", 34, periodic_lightcurve(n=10), 9, history_days=1000.0)
    payload = wire_header(777) + encode_lsst(alert)[5:]
    decoded = decode_lsst(payload, resolver)
    assert decoded.object_id == "12" and decoded.alert_id == "34" and decoded.n_points == 10
    assert reason_of(payload) == "unknown_schema"  # the built-in resolver does not know 777
