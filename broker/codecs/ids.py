"""Stable numeric ids for replayed alerts: the same object and point give the same id in every process.

Python's `hash()` is salted per process, so ids come from BLAKE2b instead; 63 bits keep them positive
Avro longs. Two different (object, point) pairs collide with probability ~2^-63 per pair.
"""

from __future__ import annotations

import hashlib

_INT63 = (1 << 63) - 1


def _hash63(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big") & _INT63


def point_id(object_id: str, index: int) -> int:
    """Id of point `index` of object `object_id`: ZTF candid / LSST diaSourceId of a replayed detection.

    Replay passes `point_id(object_id, index)` as the triggering id too, so a detection keeps its id when
    it later appears in the history of another alert.
    """
    if index < 0:
        raise ValueError(f"point index must be >= 0, got {index}")
    return _hash63(f"{object_id}\x1f{index}")


def lsst_object_id(object_id: str) -> int:
    """diaObjectId (a long) for an archive object id: the number itself when it is one, else a hash."""
    text = object_id.strip()
    if text.isdigit() and int(text) <= _INT63:
        return int(text)
    return _hash63(object_id)
