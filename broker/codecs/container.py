"""Avro object-container framing for one-alert-per-message streams, without per-message schema parsing.

ZTF (and varstream's annotations) put a whole container file — header with the writer schema, then one
block — in every Kafka message. `fastavro.reader` would parse that schema for every message (milliseconds
for ZTF's 160 fields), so the header is read here and the parsed schema is cached by its bytes; the
block is then read with `schemaless_reader`. Writing likewise reuses one prebuilt header per schema.
Hand-written because fastavro has no public API for "container with a known, already-parsed schema";
the framing is the Avro 1.x spec: magic, metadata map, 16-byte sync, then (count, size, data, sync) blocks.

Untrusted bytes stay bounded: blocks decompress under a cap (`compression.MAX_BLOCK_BYTES`), a container
may declare at most `max_records` records, and a writer schema with an array or map whose items can take
zero bytes (e.g. an array of nulls: a declared count of 2^62 would loop forever) is refused. Declared
string/bytes lengths are safe already: fastavro reads what is there and fails at the end of the data.
"""

from __future__ import annotations

import io
import json
from functools import lru_cache

import fastavro
from fastavro.read import HEADER_SCHEMA

from broker.codecs.compression import MAX_BLOCK_BYTES, decompress_block
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
    """Parsed, bounded fastavro schema from its JSON text, cached by the exact bytes (bounded LRU).

    DecodeError("schema_invalid") when it does not parse or is unbounded (not cached: lru_cache keeps
    only returned values).
    """
    try:
        schema = fastavro.parse_schema(json.loads(schema_json))
    except Exception as exc:
        raise DecodeError("schema_invalid", f"Avro container schema does not parse: {exc}") from exc
    check_bounded(schema)
    return schema


_FIXED_SIZE = {"null": 0, "boolean": 1, "int": 1, "long": 1, "float": 4, "double": 8, "bytes": 1, "string": 1}


def check_bounded(schema: object) -> None:
    """DecodeError("schema_invalid") when an array or map of `schema` has items that can take 0 bytes."""
    named: dict[str, object] = {}

    def min_size(s: object, seen: frozenset[str]) -> int:
        if isinstance(s, str):
            if s in _FIXED_SIZE:
                return _FIXED_SIZE[s]
            if s in seen or s not in named:
                return 1  # a recursive reference sits behind a union or array: at least one byte
            return min_size(named[s], seen | {s})
        if isinstance(s, list):  # a union: the branch index is at least one byte
            for branch in s:
                min_size(branch, seen)
            return 1
        if not isinstance(s, dict):
            return 1
        kind = s.get("type")
        name = s.get("name")
        if isinstance(name, str):
            named[name] = s
        if kind in ("array", "map"):
            items = s.get("items", s.get("values"))
            if min_size(items, seen) == 0:
                raise DecodeError("schema_invalid", f"{kind} of zero-byte items in the writer schema")
            return 1
        if kind == "record" or kind == "error":
            inner = seen | {name} if isinstance(name, str) else seen
            return sum(min_size(f.get("type"), inner) for f in s.get("fields", ()))
        if kind == "fixed":
            return int(s.get("size", 0))
        if kind == "enum":
            return 1
        return min_size(kind, seen)

    min_size(schema, frozenset())


def truncated_schema(schema: dict, fields: frozenset[str]) -> dict | None:
    """The parsed record `schema` cut after the last of `fields` it has, parsed; None when it has none.

    Avro writes a record's fields in order, so a reader with this writer schema reads the leading fields
    of a message and stops: e.g. an LSST alert up to its diaSource (~25 µs) instead of its 12-month
    history (~10 ms). Named types used by the kept fields are defined within them (definition precedes use).
    """
    names = [f["name"] for f in schema.get("fields", ())]
    kept = [i for i, name in enumerate(names) if name in fields]
    if not kept:
        return None
    cut = {k: v for k, v in schema.items() if not k.startswith("__")}
    cut["fields"] = schema["fields"][: max(kept) + 1]
    return fastavro.parse_schema(cut)


@lru_cache(maxsize=_SCHEMA_CACHE_SIZE)
def _prefix_schema(schema_json: bytes, fields: frozenset[str]) -> dict | None:
    return truncated_schema(parse_schema_json(schema_json), fields)


def read_container(
    payload: bytes,
    max_records: int = 1,
    max_block_bytes: int = MAX_BLOCK_BYTES,
    prefix_fields: frozenset[str] | None = None,
) -> list[dict]:
    """All records of an Avro container held in memory (one per message for alerts).

    A block may decompress to at most `max_block_bytes`. With `prefix_fields`, each record is read only
    up to the last of those fields (see `truncated_schema`); the rest of each block is not checked.

    Raises DecodeError: "undecodable" (not a container, truncated, corrupt or oversized block, unknown
    codec, more than `max_records` records), "schema_invalid" (the header's schema is not valid Avro or
    is unbounded, see the module doc).
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
    schema = parse_schema_json(bytes(schema_json))
    if prefix_fields is not None:
        schema = _prefix_schema(bytes(schema_json), prefix_fields) or schema
    codec = bytes(meta.get("avro.codec", b"null")).decode("ascii", "replace")
    sync = header["sync"]
    records: list[dict] = []
    try:
        while buf.tell() < len(payload):
            count = read_long(buf)
            size = read_long(buf)
            if count < 0 or size < 0 or len(records) + count > max_records:
                raise ValueError(f"block declares {count} records of {size} bytes (at most {max_records})")
            data = buf.read(size)
            if len(data) != size:
                raise EOFError(f"block of {size} bytes cut short at {len(data)}")
            if buf.read(16) != sync:
                raise ValueError("block does not end with the header's sync marker")
            block = io.BytesIO(decompress_block(codec, data, max_block_bytes))
            records.extend(fastavro.schemaless_reader(block, schema, None) for _ in range(count))
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError("undecodable", f"corrupt or truncated Avro container block: {exc!r}") from exc
    return records


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
