"""Schema-id resolution: a tiny Confluent-style registry on a local http.server, local folders, and the
format dispatch of `decode`."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

import schemas
from broker.codecs import (
    SchemaResolver,
    build_lsst_alert,
    build_ztf_alert,
    decode,
    decode_lsst,
    encode_lsst,
    encode_ztf,
)
from broker.codecs.resolver import official_schema_files, wire_header
from broker.errors import ConfigError, DecodeError
from models.lightcurve import LightCurve

LIGHTCURVE = LightCurve.from_arrays([60000.0, 60001.0, 60002.5], [18.0, 18.4, 18.1], [0.02, 0.03, 0.02], "r")
REGISTERED = {
    5001: {"schema": schemas.path("lsst_alert").read_text()},
    5002: {"schema": '{"type": "record", "name": "x", "fields": [{"name": "a", "type": "nonsense"}]}'},
    5003: {"schema": "syntax = 'proto3';", "schemaType": "PROTOBUF"},
}


class Registry(BaseHTTPRequestHandler):
    """GET /schemas/ids/{id} as Confluent Schema Registry answers it; counts requests per id."""

    hits: ClassVar[dict[int, int]] = {}

    def do_GET(self) -> None:
        prefix = "/schemas/ids/"
        schema_id = int(self.path[len(prefix) :]) if self.path.startswith(prefix) else -1
        Registry.hits[schema_id] = Registry.hits.get(schema_id, 0) + 1
        if schema_id in REGISTERED:
            status, body = 200, REGISTERED[schema_id]
        else:
            status, body = 404, {"error_code": 40403, "message": "Schema not found"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def registry_url():
    Registry.hits = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def lsst_body() -> bytes:
    return encode_lsst(build_lsst_alert("31", 41, LIGHTCURVE, 2))[5:]


def test_registry_schema_is_fetched_once_and_cached(registry_url):
    resolver = SchemaResolver(registry_url=registry_url)
    payload = wire_header(5001) + lsst_body()
    decoded = [decode_lsst(payload, resolver) for _ in range(3)]
    assert {a.object_id for a in decoded} == {"31"} and decoded[0].n_points == 3
    assert Registry.hits == {5001: 1}
    assert 5001 not in official_schema_files()


def test_registry_unknown_invalid_and_non_avro_ids(registry_url):
    resolver = SchemaResolver(registry_url=registry_url)
    for schema_id, reason in [(5999, "unknown_schema"), (5002, "schema_invalid"), (5003, "schema_invalid")]:
        with pytest.raises(DecodeError) as err:
            decode_lsst(wire_header(schema_id) + lsst_body(), resolver)
        assert err.value.reason == reason, schema_id
    with pytest.raises(DecodeError):
        resolver.schema(5999)
    assert Registry.hits[5999] == 1  # an unknown id is remembered, not asked for every message


def test_local_schemas_need_no_registry(registry_url):
    resolver = SchemaResolver(registry_url=registry_url)
    decode_lsst(encode_lsst(build_lsst_alert("31", 41, LIGHTCURVE, 2), 1100), resolver)
    assert Registry.hits == {}


def test_unreachable_registry_is_a_config_error_not_a_dead_letter():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the socket closes
    resolver = SchemaResolver(registry_url=f"http://127.0.0.1:{port}", timeout_s=2.0)
    with pytest.raises(ConfigError, match="unreachable"):
        resolver.schema(5001)


def test_missing_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="nope"):
        SchemaResolver(folders=[tmp_path / "nope"])


def test_lsst_alert_packet_folder_layout_is_read(tmp_path):
    version = tmp_path / "12" / "3"
    version.mkdir(parents=True)
    (version / "lsst.v12_3.alert.avsc").write_text(schemas.path("lsst_alert").read_text())
    resolver = SchemaResolver(folders=[tmp_path])
    assert 1203 in resolver.local_ids
    assert decode_lsst(wire_header(1203) + lsst_body(), resolver).alert_id == "41"


def test_registered_schema_that_does_not_parse_is_schema_invalid():
    with pytest.raises(DecodeError) as err:
        SchemaResolver().register(
            9, {"type": "record", "name": "r", "fields": [{"name": "a", "type": "bogus"}]}
        )
    assert err.value.reason == "schema_invalid"


def test_decode_picks_the_codec_by_leading_bytes_or_format():
    ztf = encode_ztf(build_ztf_alert("ZTF22aaaaaaa", 8, LIGHTCURVE, 2))
    lsst = encode_lsst(build_lsst_alert("31", 41, LIGHTCURVE, 2))
    assert decode(ztf).survey == "ztf" and decode(ztf, fmt="ztf").survey == "ztf"
    assert decode(lsst).survey == "lsst" and decode(lsst, fmt="lsst").survey == "lsst"
    for payload, fmt in [(lsst, "ztf"), (ztf, "lsst"), (b"\x05garbage", "auto"), (b"", "auto")]:
        with pytest.raises(DecodeError) as err:
            decode(payload, fmt=fmt)
        assert err.value.reason == "undecodable"
    with pytest.raises(ValueError, match="auto"):
        decode(ztf, fmt="avro")
