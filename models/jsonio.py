"""JSON for bundle metadata, metrics and caches: numpy scalars and arrays, and paths, as plain JSON."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def json_default(value):
    """`json.dumps(..., default=json_default)`: the types our metadata holds that json cannot write."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
