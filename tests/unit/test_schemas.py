"""The shipped Avro schemas: they load, match the official ZTF/LSST schemas field for field, and document
the annotation output."""

from __future__ import annotations

import io
import json
import tomllib
from pathlib import Path

import fastavro
import fastavro.schema
import numpy as np
import pytest

import schemas
from broker.codecs import build_lsst_alert, build_ztf_alert, point_id
from broker.codecs.resolver import official_schema_files, official_schema_id
from models.lightcurve import LightCurve
from tests.fixtures.data import SHARED

ZTF_REFERENCE = SHARED / "schemas-reference" / "ztf-avro-alert"
REPO = Path(__file__).resolve().parents[2]

ANNOTATION_FIELDS = [
    "objectId", "alertId", "survey", "mjd", "n_points", "bands", "baseline_days", "period_days",
    "period_power", "period_significance", "period_runner_up_days", "fold_period_days", "class_names",
    "probabilities",
    "predicted_class", "predicted_probability", "novelty_energy", "novelty_percentile", "is_novel",
    "model_name", "model_version", "novelty_model_name", "novelty_model_version", "windows_used",
    "alert_timestamp_ms", "annotated_at_ms", "schema_version",
]  # fmt: skip


def official_ztf_schema() -> dict:
    if not ZTF_REFERENCE.is_dir():
        pytest.fail(f"official ZTF schema not found at {ZTF_REFERENCE}: CI needs ../shared beside the clone")
    names = ["candidate", "prv_candidate", "fp_hist", "cutout", "alert"]
    return fastavro.schema.load_schema_ordered([str(ZTF_REFERENCE / f"{n}.avsc") for n in names])


def official_lsst_schema(major: int = 11, minor: int = 0) -> dict:
    return fastavro.schema.load_schema(official_schema_files()[official_schema_id(major, minor)])


def records(schema: dict) -> dict[str, dict]:
    """Every named record of an expanded schema, by full name."""
    found: dict[str, dict] = {}

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get("type") == "record" and node["name"] not in found:
                found[node["name"]] = node
                for f in node["fields"]:
                    walk(f["type"])
            elif node.get("type") in ("array", "map"):
                walk(node.get("items", node.get("values")))
        elif isinstance(node, list):
            for option in node:
                walk(option)

    walk(fastavro.schema.expand_schema(schema))
    return found


def is_required(field: dict) -> bool:
    return "default" not in field


def type_name(t):
    """A field type with nested records reduced to their names, to compare field types shallowly."""
    if isinstance(t, dict):
        return t["name"] if t.get("type") == "record" else {k: type_name(v) for k, v in t.items()}
    if isinstance(t, list):
        return [type_name(x) for x in t]
    return t


@pytest.mark.parametrize("name", ["ztf_alert", "lsst_alert", "annotation"])
def test_load_parses_each_schema_once(name):
    schema = schemas.load(name)
    assert schema["type"] == "record"
    assert schemas.load(name) is schema


def test_unknown_schema_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="ztf_alert"):
        schemas.load("ztf")


def test_schema_files_ship_as_package_data():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "*.avsc" in pyproject["tool"]["setuptools"]["package-data"]["schemas"]
    for file in schemas.SCHEMA_FILES.values():
        assert (schemas.SCHEMA_DIR / file).is_file()


@pytest.mark.parametrize(
    ("ours", "official"),
    [("ztf_alert", official_ztf_schema), ("lsst_alert", official_lsst_schema)],
    ids=["ztf-v4.02", "lsst-v11.0"],
)
def test_alert_schema_is_a_field_for_field_subset_of_the_official(ours, official):
    mine, theirs = records(schemas.load(ours)), records(official())
    assert set(mine) <= set(theirs)
    for record_name, record in mine.items():
        official_fields = {f["name"]: f for f in theirs[record_name]["fields"]}
        my_fields = {f["name"]: f for f in record["fields"]}
        for name, field in my_fields.items():
            assert name in official_fields, f"{record_name}.{name} is not an official field"
            reference = official_fields[name]
            assert type_name(field["type"]) == type_name(reference["type"]), f"{record_name}.{name}"
            assert field.get("default", "<none>") == reference.get("default", "<none>"), (
                f"{record_name}.{name}"
            )
        required = {n for n, f in official_fields.items() if is_required(f)}
        assert required <= set(my_fields), f"{record_name} lacks required {sorted(required - set(my_fields))}"


def sample_lightcurve(bands: str) -> LightCurve:
    mjd = 60000.0 + 1.7 * np.arange(20)
    return LightCurve.from_arrays(mjd, 15.0 + 0.01 * (mjd - 60000.0), [0.02] * 20, list(bands * 20)[:20])


def test_official_readers_resolve_our_alerts():
    """A consumer holding only the official schema can read our alerts as reader schema."""
    lc = sample_lightcurve("gr")
    ztf = build_ztf_alert("ZTF24aaaaaaa", point_id("ZTF24aaaaaaa", 10), lc, 10)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schemas.load("ztf_alert"), ztf)
    buf.seek(0)
    read = fastavro.schemaless_reader(buf, schemas.load("ztf_alert"), official_ztf_schema())
    assert read["candidate"]["magpsf"] == pytest.approx(ztf["candidate"]["magpsf"])
    assert read["cutoutScience"] is None and len(read["prv_candidates"]) == len(ztf["prv_candidates"])

    lsst = build_lsst_alert("42", point_id("42", 10), lc, 10)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schemas.load("lsst_alert"), lsst)
    buf.seek(0)
    read = fastavro.schemaless_reader(buf, schemas.load("lsst_alert"), official_lsst_schema())
    assert read["diaSource"]["scienceFlux"] == pytest.approx(lsst["diaSource"]["scienceFlux"])
    assert read["diaSource"]["apFlux"] is None and read["diaObject"]["diaObjectId"] == 42


def test_annotation_schema_has_the_agreed_fields_each_documented():
    raw = json.loads(schemas.path("annotation").read_text())
    assert raw["namespace"] == "varstream"
    assert [f["name"] for f in raw["fields"]] == ANNOTATION_FIELDS
    for field in raw["fields"]:
        assert len(field.get("doc", "")) > 20, field["name"]
    nullable = {f["name"] for f in raw["fields"] if isinstance(f["type"], list)}
    assert nullable == {
        "novelty_energy", "novelty_percentile", "is_novel", "novelty_model_name", "novelty_model_version",
        "period_runner_up_days", "fold_period_days",
    }  # fmt: skip
