"""Avro object-container framing for one-alert-per-message streams, without per-message schema parsing.

ZTF (and varstream's annotations) put a whole container file — header with the writer schema, then one
block — in every Kafka message. `fastavro.reader` would parse that schema for every message (milliseconds
for ZTF's 160 fields), so the header is read here and the parsed schema is cached by its bytes; the
block is then read with `schemaless_reader`. Writing likewise reuses one prebuilt header per schema.
Hand-written because fastavro has no public API for "container with a known, already-parsed schema";
the framing is the Avro 1.x spec: magic, metadata map, 16-byte sync, then (count, size, data, sync) blocks.
"""

from __future__ import annotations

import io
import json
import zlib
from functools import lru_cache

import fastavro
from fastavro.read import HEADER_SCHEMA

from broker.errors import DecodeError

MAGIC = b"Obj\x01"
# Fixed sync marker of the containers varstream writes (any 16 bytes do; it only has to match per file).
SYNC_MARKER = b"varstream-avro01"
_HEADER = fastavro.parse_schema(HEADER_SCHEMA)
_SCHEMA_CACHE_SIZE = 64


def read_long(buf: io.BytesIO) -> int:
    """One zig-zag varint (Avro `long`) from `buf`; EOFError when the bytes run out."""
    shift = 0
    result = 0
    while True:
        byte = buf.read(1)
        if not byte:
            raise EOFError("payload ends inside a varint")
        b = byte[0]
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return (result >> 1) ^ -(result & 1)
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 64 bits")


def write_long(value: int) -> bytes:
    """Zig-zag varint encoding of `value` (Avro `long`)."""
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@lru_cache(maxsize=_SCHEMA_CACHE_SIZE)
def parse_schema_json(schema_json: bytes) -> dict:
    """Parsed fastavro schema from its JSON text, cached by the exact bytes (bounded LRU)."""
    return fastavro.parse_schema(json.loads(schema_json))


def read_container(payload: bytes) -> list[dict]:
    """All records of an Avro container held in memory.

    Raises DecodeError: "undecodable" (not a container, truncated, corrupt block),
    "schema_invalid" (the header's schema is not valid Avro).
    """
    if payload[:4] != MAGIC:
        raise DecodeError("undecodable", f"not an Avro container: starts with {payload[:4]!r}")
    buf = io.BytesIO(payload)
    try:
        header = fastavro.schemaless_reader(buf, _HEADER)
    except Exception as exc:  # any failure to read untrusted bytes is the same outcome
        raise DecodeError("undecodable", f"unreadable Avro container header: {exc!r}") from exc
    meta = header["meta"]
    schema_json = meta.get("avro.schema")
    if schema_json is None:
        raise DecodeError("schema_invalid", "Avro container header has no avro.schema")
    try:
        schema = parse_schema_json(bytes(schema_json))
    except Exception as exc:
        raise DecodeError("schema_invalid", f"Avro container schema does not parse: {exc}") from exc
    codec = bytes(meta.get("avro.codec", b"null")).decode("ascii", "replace")
    if codec not in ("null", "deflate"):
        return _read_with_fastavro(payload)
    sync = header["sync"]
    records: list[dict] = []
    try:
        while buf.tell() < len(payload):
            count = read_long(buf)
            size = read_long(buf)
            data = buf.read(size)
            if count < 0 or len(data) != size:
                raise EOFError(f"block of {size} bytes cut short at {len(data)}")
            if buf.read(16) != sync:
                raise ValueError("block does not end with the header's sync marker")
            if codec == "deflate":
                data = zlib.decompress(data, -15)
            block = io.BytesIO(data)
            records.extend(fastavro.schemaless_reader(block, schema, None) for _ in range(count))
    except Exception as exc:
        raise DecodeError("undecodable", f"corrupt or truncated Avro container block: {exc!r}") from exc
    return records


def _read_with_fastavro(payload: bytes) -> list[dict]:
    """Slow path for codecs other than null/deflate (snappy, zstandard, ...): fastavro's own reader."""
    try:
        return list(fastavro.reader(io.BytesIO(payload)))
    except Exception as exc:
        raise DecodeError("undecodable", f"unreadable Avro container: {exc!r}") from exc


def strip_docs(schema):
    """Copy of a JSON schema without "doc" attributes (smaller per-message headers; same data)."""
    if isinstance(schema, dict):
        return {k: strip_docs(v) for k, v in schema.items() if k != "doc" and not k.startswith("__")}
    if isinstance(schema, list):
        return [strip_docs(v) for v in schema]
    return schema


class ContainerWriter:
    """Writes one-record Avro containers for one schema, the header built once.

    The header carries the schema without docs (docs live in the .avsc files).
    """

    def __init__(self, schema: dict) -> None:
        self.schema = fastavro.parse_schema(schema)
        header = io.BytesIO()
        fastavro.writer(header, strip_docs(schema), [], sync_marker=SYNC_MARKER)
        self._header = header.getvalue()

    def encode(self, record: dict) -> bytes:
        """A complete container holding `record`; ValueError when it does not fit the schema."""
        body = io.BytesIO()
        try:
            fastavro.schemaless_writer(body, self.schema, record)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise ValueError(f"record does not fit schema {self.schema.get('name')}: {exc}") from exc
        data = body.getvalue()
        return b"".join((self._header, write_long(1), write_long(len(data)), data, SYNC_MARKER))
