"""ZTF codec: DC magnitudes, quality cuts, round trips through the replay builder, official v4.02 alerts,
and the dead-letter reason of each kind of bad message."""

from __future__ import annotations

import io
import json
import math
import os

import fastavro
import numpy as np
import pytest

import schemas
from broker.alerts import UNUSABLE_REASONS
from broker.codecs import build_ztf_alert, decode, decode_ztf, encode_ztf, point_id, ztf_record_to_alert
from broker.codecs.container import parse_schema_json
from broker.errors import DecodeError, UnusableAlert
from broker.metrics import DEAD_LETTER_REASONS
from models.lightcurve import LightCurve
from tests.unit.test_schemas import official_ztf_schema


def periodic_lightcurve(n: int = 120, bands=("g", "r"), seed: int = 3) -> LightCurve:
    rng = np.random.default_rng(seed)
    mjd = np.sort(59000.0 + rng.uniform(0.0, 200.0, n))
    mag = 16.0 + 0.6 * np.sin(2 * np.pi * mjd / 0.61) + rng.normal(0.0, 0.01, n)
    return LightCurve.from_arrays(mjd, mag, rng.uniform(0.01, 0.08, n), rng.choice(list(bands), n))


def write_container(alert: dict, schema: dict | None = None) -> bytes:
    """A container as ZTF writes it: fastavro's own writer, full schema with docs in the header."""
    buf = io.BytesIO()
    fastavro.writer(buf, schema or schemas.load("ztf_alert"), [alert])
    return buf.getvalue()


def one_point_alert(**candidate) -> dict:
    """A one-detection alert (varstream ZTF-like schema) whose candidate fields are overridden."""
    lc = LightCurve.from_arrays([60000.0], [15.0], [0.05], "r")
    alert = build_ztf_alert("ZTF24abcdefg", 77, lc, 0)
    alert["candidate"].update(candidate)
    return alert


def expected_dc(magpsf, sigmapsf, magnr, sigmagnr, positive):
    """Fink's dc_mag written out with math (zero points cancel): the reference for the codec."""
    ref, diff = 10 ** (-0.4 * magnr), 10 ** (-0.4 * magpsf)
    dc = ref + diff if positive else ref - diff
    sigma = math.sqrt(
        (sigmapsf / 1.0857362047581294 * diff) ** 2 + (sigmagnr / 1.0857362047581294 * ref) ** 2
    )
    return -2.5 * math.log10(dc), 1.0857362047581294 * sigma / dc


@pytest.mark.parametrize("isdiffpos", ["t", "1", "f", "0"])
def test_dc_magnitude_follows_finks_formula(isdiffpos):
    alert = one_point_alert(magpsf=17.0, sigmapsf=0.1, magnr=15.0, sigmagnr=0.02, isdiffpos=isdiffpos)
    decoded = decode_ztf(encode_ztf(alert))
    mag, err = expected_dc(17.0, 0.1, 15.0, 0.02, positive=isdiffpos in ("t", "1"))
    assert decoded.lightcurve.mag[0] == pytest.approx(mag, abs=1e-6)
    assert decoded.lightcurve.magerr[0] == pytest.approx(err, rel=1e-6)
    assert decoded.lightcurve.band.tolist() == ["r"]
    assert decoded.mjd == pytest.approx(60000.0)


def test_round_trip_build_encode_decode():
    lc = periodic_lightcurve()
    index = 100
    alert = build_ztf_alert("ZTF21aaaaaaa", point_id("ZTF21aaaaaaa", index), lc, index, ra=10.0, dec=-5.0)
    decoded = decode(encode_ztf(alert))

    window = (lc.mjd <= lc.mjd[index]) & (lc.mjd >= lc.mjd[index] - 30.0)
    assert decoded.survey == "ztf" and decoded.object_id == "ZTF21aaaaaaa"
    assert decoded.alert_id == str(point_id("ZTF21aaaaaaa", index))
    assert decoded.mjd == pytest.approx(lc.mjd[index], abs=1e-8)
    assert decoded.n_points == window.sum() and not decoded.dropped
    np.testing.assert_allclose(decoded.lightcurve.mjd, lc.mjd[window], atol=1e-8)
    np.testing.assert_allclose(decoded.lightcurve.mag, lc.mag[window], atol=1e-5)
    np.testing.assert_allclose(decoded.lightcurve.magerr, lc.magerr[window], rtol=1e-5)
    assert decoded.lightcurve.band.tolist() == lc.band[window].tolist()
    assert np.all(np.diff(decoded.lightcurve.mjd) >= 0)
    history = [p["candid"] for p in alert["prv_candidates"]]
    assert history == [point_id("ZTF21aaaaaaa", j) for j in np.flatnonzero(window)[:-1]]


def test_reference_magnitude_is_fixed_per_band_across_alerts():
    lc = periodic_lightcurve()
    refs = {}
    for index in (60, 90, 119):
        alert = build_ztf_alert("o", 1, lc, index)
        for p in [alert["candidate"], *alert["prv_candidates"]]:
            refs.setdefault(p["fid"], set()).add(p["magnr"])
            assert p["isdiffpos"] == "t" and p["sigmagnr"] == 0.0
    assert all(len(values) == 1 for values in refs.values())


def test_builder_rejects_bands_ztf_lacks_and_bad_indices():
    with pytest.raises(ValueError, match="'V'"):
        build_ztf_alert("ogle", 1, periodic_lightcurve(bands=("V", "g")), 5)
    with pytest.raises(ValueError, match="outside"):
        build_ztf_alert("o", 1, periodic_lightcurve(n=10), 10)


def test_decodes_an_alert_written_with_the_official_v4_02_schema():
    lc = periodic_lightcurve(bands=("g", "r", "i"))
    alert = build_ztf_alert("ZTF19abcdefg", 1234567890123, lc, 110)
    upper_limit = dict(alert["prv_candidates"][0], magpsf=None, sigmapsf=None, candid=None, isdiffpos=None)
    alert["prv_candidates"].append(upper_limit)
    stamp = {"fileName": "candid.fits.gz", "stampData": os.urandom(2000)}
    alert |= {"cutoutScience": stamp, "cutoutTemplate": stamp, "cutoutDifference": stamp, "fp_hists": None}

    decoded = decode_ztf(write_container(alert, official_ztf_schema()))

    n_detections = len(alert["prv_candidates"])  # the history detections plus the candidate, less the limit
    assert decoded.n_points == n_detections and decoded.dropped == {"upper_limit": 1}
    assert decoded.alert_id == "1234567890123" and decoded.object_id == "ZTF19abcdefg"
    assert set(decoded.lightcurve.bands) <= {"g", "r", "i"}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"magpsf": None, "sigmapsf": None}, "upper_limit"),
        ({"magpsf": float("nan")}, "non_finite"),
        ({"magnr": None}, "no_total_flux"),  # no reference source: no total magnitude
        ({"isdiffpos": None}, "non_finite"),
        ({"sigmapsf": 0.0}, "bad_error"),
        ({"sigmapsf": -0.1}, "bad_error"),
        ({"sigmagnr": -0.1}, "bad_error"),
        ({"distnr": 3.0}, "no_total_flux"),  # the nearest reference source is another star
        ({"nbad": 2}, "flagged"),
        ({"rb": 0.2}, "flagged"),
        ({"fid": 4}, "flagged"),
        ({"magpsf": 14.0, "magnr": 15.0, "isdiffpos": "f"}, "non_positive_flux"),
    ],
)
def test_bad_history_points_are_dropped_and_counted(fields, reason):
    lc = periodic_lightcurve(n=40)
    alert = build_ztf_alert("ZTF20xxxxxxx", 5, lc, 39)
    n_history = len(alert["prv_candidates"])
    alert["prv_candidates"][0].update(fields)
    decoded = decode_ztf(encode_ztf(alert))
    assert decoded.dropped == {reason: 1}
    assert decoded.n_points == n_history  # the candidate and the other history points stay


def test_a_history_copy_of_the_candidate_counts_once_and_the_candidate_wins():
    lc = periodic_lightcurve(n=40)
    alert = build_ztf_alert("o", 5, lc, 39)
    copy = dict(alert["candidate"])
    twin = {k: copy[k] for k in alert["prv_candidates"][0]} | {"magpsf": copy["magpsf"] + 0.5}
    alert["prv_candidates"].append(twin)
    decoded = decode_ztf(encode_ztf(alert))
    assert decoded.n_points == len(alert["prv_candidates"])  # history + candidate - duplicate
    assert decoded.lightcurve.mag[-1] == pytest.approx(lc.mag[39], abs=1e-5)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"rb": 0.1}, "no_usable_points"),
        ({"magnr": None, "sigmagnr": None}, "no_reference_source"),
        ({"distnr": 4.0}, "no_reference_source"),
        ({"magpsf": None, "sigmapsf": None}, "upper_limits_only"),
    ],
)
def test_a_valid_alert_with_nothing_usable_is_skipped_not_dead_lettered(fields, reason):
    with pytest.raises(UnusableAlert) as err:
        ztf_record_to_alert(one_point_alert(**fields))  # the record as fastavro gives it back
    assert err.value.reason == reason and reason in UNUSABLE_REASONS
    assert not isinstance(err.value, DecodeError) and sum(err.value.dropped.values()) == 1


def test_the_candidate_may_fail_the_cuts_while_its_history_survives():
    lc = periodic_lightcurve(n=40)
    alert = build_ztf_alert("o", 5, lc, 39)
    alert["candidate"]["nbad"] = 3
    decoded = decode_ztf(encode_ztf(alert))
    assert decoded.dropped == {"flagged": 1} and decoded.mjd == pytest.approx(lc.mjd[39])
    assert decoded.lightcurve.mjd[-1] < lc.mjd[39]


def reason_of(payload: bytes, **kwargs) -> str:
    with pytest.raises(DecodeError) as err:
        decode(payload, **kwargs)
    assert err.value.reason in DEAD_LETTER_REASONS
    return err.value.reason


def test_each_kind_of_bad_message_gets_its_dead_letter_reason():
    good = encode_ztf(build_ztf_alert("o", 5, periodic_lightcurve(n=40), 39))
    assert reason_of(b"certainly not Avro" * 4) == "undecodable"
    assert reason_of(b"Obj\x01" + os.urandom(200)) == "undecodable"
    assert reason_of(good[: len(good) // 2]) == "undecodable"
    assert reason_of(good[:-3]) == "undecodable"  # the sync marker cut short
    assert reason_of(b"", fmt="ztf") == "undecodable"
    two = io.BytesIO()
    fastavro.writer(
        two, schemas.load("ztf_alert"), [build_ztf_alert("o", 5, periodic_lightcurve(n=3), 2)] * 2
    )
    assert reason_of(two.getvalue()) == "undecodable"


def test_a_header_schema_that_does_not_parse_is_schema_invalid():
    good = encode_ztf(build_ztf_alert("o", 5, periodic_lightcurve(n=5), 4))
    broken = good.replace(b'"record"', b'"recurd"', 1)  # same length: the header still frames
    assert broken != good
    assert reason_of(broken) == "schema_invalid"


def test_a_record_without_a_candidate_is_missing_field():
    raw = json.loads(schemas.path("ztf_alert").read_text())
    raw["fields"] = raw["fields"][:4]  # schemavsn, publisher, objectId, candid: no candidate
    alert = build_ztf_alert("o", 5, periodic_lightcurve(n=5), 4)
    assert reason_of(write_container(alert, fastavro.parse_schema(raw))) == "missing_field"


def test_an_older_schema_without_reference_fields_is_skipped_as_no_reference_source():
    raw = json.loads(schemas.path("ztf_alert").read_text())
    candidate = raw["fields"][4]["type"]
    candidate["fields"] = [f for f in candidate["fields"] if f["name"] not in ("magnr", "sigmagnr")]
    raw["fields"] = raw["fields"][:5]  # no prv_candidates either
    alert = build_ztf_alert("o", 5, periodic_lightcurve(n=5), 4)
    del alert["prv_candidates"]
    with pytest.raises(UnusableAlert) as err:
        decode(write_container(alert, fastavro.parse_schema(raw)))
    assert err.value.reason == "no_reference_source"


def test_the_writer_schema_is_parsed_once_per_distinct_header():
    payloads = [encode_ztf(build_ztf_alert(f"o{k}", k, periodic_lightcurve(n=20), 19)) for k in range(5)]
    before = parse_schema_json.cache_info()
    for payload in payloads:
        decode_ztf(payload)
    after = parse_schema_json.cache_info()
    assert after.misses - before.misses <= 1 and after.hits - before.hits >= 4
