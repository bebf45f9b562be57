"""Avro schemas shipped with varstream: ZTF-like alert, LSST-like alert, annotation output."""

from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent
