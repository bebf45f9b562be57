"""Avro schemas shipped with varstream: ZTF-like alert, LSST-like alert, annotation output.

`load(name)` parses a schema once per process (fastavro) and returns the same object afterwards; treat it
as read-only. The .avsc files ship inside the installed package (package-data in pyproject.toml).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import fastavro.schema

SCHEMA_DIR = Path(__file__).resolve().parent

# name -> file; the names callers use.
SCHEMA_FILES = {
    "ztf_alert": "ztf_alert.avsc",
    "lsst_alert": "lsst_alert.avsc",
    "annotation": "annotation.avsc",
}


def path(name: str) -> Path:
    """Where the .avsc file of schema `name` lies."""
    try:
        return SCHEMA_DIR / SCHEMA_FILES[name]
    except KeyError:
        raise ValueError(f"unknown schema {name!r}; known: {', '.join(SCHEMA_FILES)}") from None


@cache
def load(name: str) -> dict:
    """The parsed fastavro schema `name` ("ztf_alert", "lsst_alert" or "annotation"), cached."""
    return fastavro.schema.load_schema(path(name))
