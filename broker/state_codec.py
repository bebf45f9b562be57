"""One object's stored state and its versioned binary encoding (the SQLite row and the changelog value).

The same bytes are written to the local store and to the compacted changelog topic, so a restore copies
records without re-encoding them. Layout, little-endian (version 2):

    header  "VS" | version u8 | flags u8 | n u32 | classified_n_points u32 | n_classifications u32
            | classified_mjd f64 (NaN = never) | n_bands u8
    history alerts_since_history i32 | last_n_detections i32 (-1 = unknown; absent in version 1)
    bands   n_bands x (len u8, utf-8 name)
    arrays  mjd f64[n] [d] | mag f64[n] [mag] | magerr f64[n] [mag] | band index u8[n]

The history fields are the lazy-decoding policy's state for the object (broker/history.py), so that a
restart, a restore or a partition move continues its reconcile schedule; version 1 states still decode,
with both unknown ("untracked": the next alert reads its history once, as before version 2).

About 25 bytes per point: an object with 300 points is ~7.5 kB. Points are kept sorted by
(time rounded to 1 ms, band), the dedupe key.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, replace

import numpy as np

from broker.errors import VarstreamError
from models.lightcurve import LightCurve

MS_PER_DAY = 86_400_000.0
MAGIC = b"VS"
VERSION = 2
READABLE_VERSIONS = (1, 2)
MAX_BANDS = 64  # band index lives in the low 6 bits of the dedupe key
_HEADER = struct.Struct("<2sBBIIIdB")
_HISTORY = struct.Struct("<ii")  # version 2: the history policy's state, -1 = unknown


class StateDecodeError(VarstreamError, ValueError):
    """A stored or changelog value that is not a version this code reads."""


@dataclass(frozen=True)
class StoredObject:
    """An object's points (sorted by dedupe key) and its classification bookkeeping.

    keys: (n,) int64, t_ms * 64 + band index, sorted; watermarks: (n_bands,) int64, latest t_ms per band.
    Arrays are never modified in place: a merge builds new ones (copy-on-write keeps rollback trivial).
    """

    mjd: np.ndarray
    mag: np.ndarray
    magerr: np.ndarray
    band_idx: np.ndarray
    bands: tuple[str, ...]
    keys: np.ndarray
    watermarks: np.ndarray
    classified_n_points: int = 0
    classified_mjd: float | None = None
    n_classifications: int = 0
    # lazy decoding (broker/history.py): alerts since the history was last read, last ZTF ndethist seen
    alerts_since_history: int | None = None
    last_n_detections: int | None = None

    @classmethod
    def empty(cls) -> StoredObject:
        f = np.zeros(0, np.float64)
        return cls(f, f, f, np.zeros(0, np.uint8), (), np.zeros(0, np.int64), np.zeros(0, np.int64))

    @property
    def n_points(self) -> int:
        return len(self.keys)

    @property
    def last_mjd(self) -> float:
        return float(self.mjd.max()) if len(self.mjd) else float("nan")

    def lightcurve(self) -> LightCurve:
        band = np.asarray(self.bands, dtype=object)[self.band_idx] if self.bands else np.zeros(0, object)
        return LightCurve(self.mjd, self.mag, self.magerr, band)

    def classified(self, n_points: int, mjd: float) -> StoredObject:
        return replace(
            self,
            classified_n_points=n_points,
            classified_mjd=mjd,
            n_classifications=self.n_classifications + 1,
        )

    def with_history(self, alerts_since: int | None, last_n_detections: int | None) -> StoredObject:
        return replace(self, alerts_since_history=alerts_since, last_n_detections=last_n_detections)

    def merge(self, lc: LightCurve, max_points: int) -> tuple[StoredObject, int]:
        """This object with the light curve's new points added (oldest dropped beyond max_points).

        Per-band watermark: a point later than its band's latest stored time is new without a lookup;
        only earlier ones (repeated history, late arrivals) are looked up, vectorised, in the sorted keys.
        Returns (merged object, points added); `self` when nothing is new.
        """
        if not len(lc):
            return self, 0
        bands, idx = _band_indices(self.bands, lc.band)
        t_ms = np.round(np.asarray(lc.mjd, np.float64) * MS_PER_DAY).astype(np.int64)
        keys = t_ms * MAX_BANDS + idx
        watermarks = np.concatenate([self.watermarks, np.full(len(bands) - len(self.bands), -1, np.int64)])
        new = t_ms > watermarks[idx]
        late = np.flatnonzero(~new)
        if len(late) and len(self.keys):
            pos = np.minimum(np.searchsorted(self.keys, keys[late]), len(self.keys) - 1)
            new[late] = self.keys[pos] != keys[late]
        if not new.any():
            return self, 0
        add_keys, first = np.unique(keys[new], return_index=True)
        take = np.flatnonzero(new)[first]
        all_keys = np.concatenate([self.keys, add_keys])
        cat = [
            np.concatenate([self.mjd, np.asarray(lc.mjd, np.float64)[take]]),
            np.concatenate([self.mag, np.asarray(lc.mag, np.float64)[take]]),
            np.concatenate([self.magerr, np.asarray(lc.magerr, np.float64)[take]]),
            np.concatenate([self.band_idx, idx[take]]),
        ]
        if len(self.keys) and add_keys[0] < self.keys[-1]:  # a late point: re-sort (appends need not)
            order = np.argsort(all_keys, kind="stable")
            all_keys, cat = all_keys[order], [a[order] for a in cat]
        if len(all_keys) > max_points:  # the oldest points go first
            all_keys, cat = all_keys[-max_points:], [a[-max_points:] for a in cat]
        np.maximum.at(watermarks, idx[take], t_ms[take])
        merged = StoredObject(*cat, tuple(bands), all_keys, watermarks, self.classified_n_points,
                              self.classified_mjd, self.n_classifications, self.alerts_since_history,
                              self.last_n_detections)  # fmt: skip
        return merged, len(add_keys)


def _band_indices(known: tuple[str, ...], band: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Band names (known first, then new ones) and each point's index: one vectorised pass per band."""
    bands = list(known)
    idx = np.full(len(band), -1, np.int16)
    for i, name in enumerate(bands):
        idx[band == name] = i
    missing = idx < 0
    if missing.any():
        for name in dict.fromkeys(str(b) for b in band[missing]):
            idx[band == name] = len(bands)
            bands.append(name)
        if len(bands) > MAX_BANDS:
            raise ValueError(f"an object may have at most {MAX_BANDS} bands, got {len(bands)}")
    return bands, idx.astype(np.uint8)


def encode_state(obj: StoredObject) -> bytes:
    """The versioned bytes of an object (see the module docstring for the layout)."""
    mjd = math.nan if obj.classified_mjd is None else obj.classified_mjd
    parts = [
        _HEADER.pack(
            MAGIC,
            VERSION,
            0,
            obj.n_points,
            obj.classified_n_points,
            obj.n_classifications,
            mjd,
            len(obj.bands),
        ),
        _HISTORY.pack(_or_unknown(obj.alerts_since_history), _or_unknown(obj.last_n_detections)),
    ]
    for name in obj.bands:
        raw = name.encode()
        parts.append(bytes([len(raw)]) + raw)
    for arr, dtype in ((obj.mjd, "<f8"), (obj.mag, "<f8"), (obj.magerr, "<f8"), (obj.band_idx, "u1")):
        parts.append(np.ascontiguousarray(arr, dtype=dtype).tobytes())
    return b"".join(parts)


def decode_state(data: bytes) -> StoredObject:
    """Inverse of encode_state (also reads version 1); raises StateDecodeError for other magic bytes or
    versions."""
    if len(data) < _HEADER.size or data[:2] != MAGIC:
        raise StateDecodeError(f"not a varstream object state (starts {bytes(data[:4])!r})")
    _magic, version, _flags, n, c_n, n_cls, c_mjd, n_bands = _HEADER.unpack_from(data)
    if version not in READABLE_VERSIONS:
        raise StateDecodeError(
            f"object state version {version} is not readable (this code reads {READABLE_VERSIONS})"
        )
    pos = _HEADER.size
    since, last_n = -1, -1
    if version >= 2:
        if len(data) < pos + _HISTORY.size:
            raise StateDecodeError(f"object state of version {version} is cut short in its header")
        since, last_n = _HISTORY.unpack_from(data, pos)
        pos += _HISTORY.size
    bands = []
    for _ in range(n_bands):
        size = data[pos]
        bands.append(bytes(data[pos + 1 : pos + 1 + size]).decode())
        pos += 1 + size
    if len(data) - pos != 25 * n:
        raise StateDecodeError(f"object state of {n} points has {len(data) - pos} array bytes, not {25 * n}")
    mjd = np.frombuffer(data, "<f8", n, pos)
    mag = np.frombuffer(data, "<f8", n, pos + 8 * n)
    magerr = np.frombuffer(data, "<f8", n, pos + 16 * n)
    band_idx = np.frombuffer(data, "u1", n, pos + 24 * n)
    t_ms = np.round(mjd * MS_PER_DAY).astype(np.int64)
    watermarks = np.full(n_bands, -1, np.int64)
    np.maximum.at(watermarks, band_idx, t_ms)
    return StoredObject(
        mjd, mag, magerr, band_idx, tuple(bands), t_ms * MAX_BANDS + band_idx, watermarks,
        c_n, None if math.isnan(c_mjd) else c_mjd, n_cls, _known(since), _known(last_n),
    )  # fmt: skip


def _or_unknown(value: int | None) -> int:
    return -1 if value is None else max(-1, min(int(value), 2**31 - 1))


def _known(value: int) -> int | None:
    return None if value < 0 else value


def state_last_mjd(data: bytes) -> float:
    """Latest detection time of an encoded state without decoding it all (for the store's index)."""
    obj = decode_state(data)
    return obj.last_mjd
