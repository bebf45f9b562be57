"""Schema ids → parsed writer schemas for Confluent wire-format messages (Rubin/LSST alerts).

Wire format: byte 0x00, 4-byte big-endian schema id, then the Avro body without schema. Rubin's registry
uses id = MAJOR*100 + MINOR of the lsst-alert-packet version (11.0 → 1100).

A `SchemaResolver` knows, without any network:
  * every official lsst-alert-packet schema installed with the `lsst-alert-packet` package (7.0 … 11.x),
    under MAJOR*100+MINOR;
  * varstream's own LSST-like schema (`schemas/lsst_alert.avsc`) under VARSTREAM_LSST_SCHEMA_ID;
  * the schemas in the given local folders: files `<id>.avsc`, or the lsst-alert-packet layout
    `<MAJOR>/<MINOR>/lsst.v<MAJOR>_<MINOR>.alert.avsc` (id MAJOR*100+MINOR). Folders win over built-ins.
and, when a registry URL is given, asks a Confluent Schema Registry (`GET {url}/schemas/ids/{id}`) for the
rest. Each schema is parsed once and cached; ids the registry does not know are remembered for a minute.
"""

from __future__ import annotations

import importlib.util
import json
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import fastavro
import fastavro.schema

import schemas
from broker.errors import ConfigError, DecodeError

# varstream's LSST-like schema id. Official ids are MAJOR*100+MINOR (< 10000 for any MAJOR < 100); this
# one reads "9000 · 11.00" (derived from lsst.v11_0) and sits far above them, so neither can shadow the other.
VARSTREAM_LSST_SCHEMA_ID = 90_001_100
WIRE_MAGIC = 0
WIRE_HEADER_SIZE = 5
_OFFICIAL_FILE = re.compile(r"lsst\.v(\d+)_(\d+)\.alert\.avsc$")


def official_schema_id(major: int, minor: int) -> int:
    """Rubin's registry id of lsst-alert-packet version MAJOR.MINOR."""
    return major * 100 + minor


def wire_header(schema_id: int) -> bytes:
    """The 5-byte Confluent wire-format prefix for `schema_id`."""
    if not 0 <= schema_id < 2**31:
        raise ValueError(f"schema id must fit a signed 32-bit int, got {schema_id}")
    return bytes([WIRE_MAGIC]) + schema_id.to_bytes(4, "big")


def split_wire(payload: bytes) -> int:
    """Schema id of a wire-format payload (its Avro body starts at byte 5); DecodeError when not one."""
    if len(payload) < WIRE_HEADER_SIZE or payload[0] != WIRE_MAGIC:
        raise DecodeError(
            "undecodable", f"not Confluent wire format: {len(payload)} bytes starting {payload[:5]!r}"
        )
    return int.from_bytes(payload[1:WIRE_HEADER_SIZE], "big")


def official_schema_files() -> dict[int, Path]:
    """id → alert .avsc of every lsst-alert-packet version installed (found without importing it)."""
    spec = importlib.util.find_spec("lsst.alert.packet")
    if spec is None or not spec.submodule_search_locations:
        return {}
    root = Path(next(iter(spec.submodule_search_locations))) / "schema"
    return _scan_lsst_layout(root)


def _scan_lsst_layout(root: Path) -> dict[int, Path]:
    found = {}
    for path in root.glob("*/*/lsst.v*_*.alert.avsc"):
        match = _OFFICIAL_FILE.search(path.name)
        if match:
            found[official_schema_id(int(match[1]), int(match[2]))] = path
    return found


def scan_folder(folder: Path) -> dict[int, Path]:
    """id → .avsc in a local schema folder (`<id>.avsc` files and/or the lsst-alert-packet layout)."""
    if not folder.is_dir():
        raise ConfigError(f"schema folder {folder} does not exist or is not a directory")
    found = _scan_lsst_layout(folder)
    for path in folder.glob("*.avsc"):
        if path.stem.isdigit():
            found[int(path.stem)] = path
    return found


class SchemaResolver:
    """Parsed writer schema of a wire-format schema id, from local files or a Confluent Schema Registry.

    `schema(id)` raises DecodeError("unknown_schema") for an id nobody knows, DecodeError("schema_invalid")
    for one whose schema does not parse, and ConfigError when the registry cannot be reached (an outage
    must not send alerts to the dead-letter topic).
    """

    def __init__(
        self,
        registry_url: str | None = None,
        folders: Sequence[Path | str] = (),
        timeout_s: float = 10.0,
        unknown_ttl_s: float = 60.0,
    ) -> None:
        self.registry_url = registry_url.rstrip("/") if registry_url else None
        self.timeout_s = timeout_s
        self.unknown_ttl_s = unknown_ttl_s
        self._files: dict[int, Path] = official_schema_files()
        self._files[VARSTREAM_LSST_SCHEMA_ID] = schemas.path("lsst_alert")
        for folder in folders:
            self._files.update(scan_folder(Path(folder)))
        self._parsed: dict[int, dict] = {}
        self._unknown_until: dict[int, float] = {}
        self._lock = threading.Lock()
        self._session = None

    @property
    def local_ids(self) -> list[int]:
        """Ids resolvable without a registry, sorted."""
        return sorted(self._files.keys() | self._parsed.keys())

    def register(self, schema_id: int, schema: dict | str) -> None:
        """Make `schema_id` resolve to `schema` (JSON text or dict), e.g. for a schema built in code."""
        self._parsed[schema_id] = self._parse(schema_id, schema, "given schema")

    def schema(self, schema_id: int) -> dict:
        """The parsed writer schema of `schema_id` (cached after the first call)."""
        parsed = self._parsed.get(schema_id)
        if parsed is not None:
            return parsed
        with self._lock:
            parsed = self._parsed.get(schema_id)
            if parsed is None:
                parsed = self._load(schema_id)
                self._parsed[schema_id] = parsed
        return parsed

    def _load(self, schema_id: int) -> dict:
        path = self._files.get(schema_id)
        if path is not None:
            try:
                return fastavro.schema.load_schema(path)
            except Exception as exc:
                raise DecodeError(
                    "schema_invalid", f"schema id {schema_id} ({path}) does not parse: {exc}"
                ) from exc
        if self.registry_url is None:
            raise DecodeError(
                "unknown_schema",
                f"schema id {schema_id} is not one of the {len(self._files)} local schemas; no registry set",
            )
        if self._unknown_until.get(schema_id, 0.0) > time.monotonic():
            raise DecodeError(
                "unknown_schema", f"schema id {schema_id} unknown to registry {self.registry_url}"
            )
        return self._fetch(schema_id)

    def _fetch(self, schema_id: int) -> dict:
        import requests  # only resolvers with a registry pay for the import

        if self._session is None:
            self._session = requests.Session()
        url = f"{self.registry_url}/schemas/ids/{schema_id}"
        try:
            response = self._session.get(url, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise ConfigError(f"schema registry unreachable at {url}: {exc}") from exc
        if response.status_code == 404:
            self._unknown_until[schema_id] = time.monotonic() + self.unknown_ttl_s
            raise DecodeError(
                "unknown_schema", f"schema id {schema_id} unknown to registry {self.registry_url}"
            )
        if response.status_code != 200:
            raise ConfigError(
                f"schema registry answered HTTP {response.status_code} for {url}: {response.text[:200]}"
            )
        try:
            body = response.json()
            schema_type = body.get("schemaType", "AVRO")
            text = body["schema"]
        except (ValueError, KeyError, AttributeError) as exc:
            raise DecodeError(
                "schema_invalid", f"registry answer for id {schema_id} has no schema: {exc!r}"
            ) from exc
        if schema_type != "AVRO":
            raise DecodeError("schema_invalid", f"schema id {schema_id} is {schema_type}, not AVRO")
        return self._parse(schema_id, text, url)

    @staticmethod
    def _parse(schema_id: int, schema: dict | str, origin: str) -> dict:
        try:
            return fastavro.parse_schema(json.loads(schema) if isinstance(schema, str) else schema)
        except Exception as exc:
            raise DecodeError(
                "schema_invalid", f"schema id {schema_id} from {origin} does not parse: {exc}"
            ) from exc
