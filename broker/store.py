"""Per-object light-curve store: every detection seen for an object, deduplicated, in embedded SQLite.

Why SQLite: one file, no server, transactional. The pipeline writes a whole batch in one transaction and
commits it only after that batch's Kafka offsets are committed, so a crash rolls the store back to exactly
the state the redelivered messages expect (at-least-once replays give the same decisions).

Points are deduplicated by (object, band, time rounded to 1 ms): alerts repeat their history, and the same
detection decoded from two alerts must count once. Bounded by `StoreConfig`: max objects (least recently
updated evicted), max points per object (oldest dropped), optional idle age.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from broker.config import StoreConfig
from models.lightcurve import LightCurve

MS_PER_DAY = 86_400_000.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    object_id TEXT NOT NULL,
    band TEXT NOT NULL,
    t_ms INTEGER NOT NULL,          -- round(mjd * 86400000): the dedupe key
    mjd REAL NOT NULL,
    mag REAL NOT NULL,
    magerr REAL NOT NULL,
    PRIMARY KEY (object_id, band, t_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS objects (
    object_id TEXT PRIMARY KEY,
    n_points INTEGER NOT NULL,
    last_mjd REAL NOT NULL,         -- latest detection time
    touched INTEGER NOT NULL,       -- store-wide update counter, for least-recently-updated eviction
    classified_n_points INTEGER NOT NULL DEFAULT 0,
    classified_mjd REAL,
    n_classifications INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS objects_touched ON objects (touched);
CREATE INDEX IF NOT EXISTS objects_last_mjd ON objects (last_mjd);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class ObjectState:
    """What the trigger policy needs to know about an object."""

    object_id: str
    n_points: int
    last_mjd: float
    classified_n_points: int  # 0 = never classified
    classified_mjd: float | None
    n_classifications: int


class LightCurveStore:
    """SQLite-backed store; one open transaction at a time, ended by `commit()` or `rollback()`."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        path = config.path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level="DEFERRED", check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.commit()
        row = self._db.execute("SELECT value FROM meta WHERE key = 'touched'").fetchone()
        self._touched = int(row[0]) if row else 0
        # Kept up to date by merge/evict rather than a COUNT(*) per batch, which scans every object.
        self._n_objects = self._count_rows()

    # -- writes -------------------------------------------------------------------------------------
    def merge(self, object_id: str, lc: LightCurve) -> ObjectState:
        """Add an alert's points to the object (duplicates ignored) and return its updated state."""
        self._touched += 1
        if len(lc):
            rows = [
                (object_id, str(b), round(t * MS_PER_DAY), float(t), float(m), float(e))
                for t, m, e, b in zip(lc.mjd, lc.mag, lc.magerr, lc.band, strict=True)
            ]
            self._db.executemany("INSERT OR IGNORE INTO points VALUES (?, ?, ?, ?, ?, ?)", rows)
        n_points, last_mjd = self._db.execute(
            "SELECT COUNT(*), MAX(mjd) FROM points WHERE object_id = ?", (object_id,)
        ).fetchone()
        cap = self.config.max_points_per_object
        if n_points > cap:
            self._db.execute(
                "DELETE FROM points WHERE object_id = ? AND t_ms IN ("
                " SELECT t_ms FROM points WHERE object_id = ? ORDER BY t_ms ASC LIMIT ?)",
                (object_id, object_id, n_points - cap),
            )
            n_points = cap
        values = (n_points, last_mjd if last_mjd is not None else float("nan"), self._touched, object_id)
        updated = self._db.execute(
            "UPDATE objects SET n_points = ?, last_mjd = ?, touched = ? WHERE object_id = ?", values
        ).rowcount
        if not updated:
            self._db.execute(
                "INSERT INTO objects (n_points, last_mjd, touched, object_id) VALUES (?, ?, ?, ?)", values
            )
            self._n_objects += 1
        return self.state(object_id)

    def mark_classified(self, object_id: str, n_points: int, mjd: float) -> None:
        self._db.execute(
            "UPDATE objects SET classified_n_points = ?, classified_mjd = ?, "
            "n_classifications = n_classifications + 1 WHERE object_id = ?",
            (n_points, mjd, object_id),
        )

    def evict(self) -> int:
        """Apply the bounds; returns how many objects were evicted."""
        evicted = 0
        if self.config.max_idle_days > 0:
            (latest,) = self._db.execute("SELECT MAX(last_mjd) FROM objects").fetchone()
            if latest is not None:
                cutoff = latest - self.config.max_idle_days
                evicted += self._delete_objects("SELECT object_id FROM objects WHERE last_mjd < ?", (cutoff,))
        excess = self.count() - self.config.max_objects
        if excess > 0:
            evicted += self._delete_objects(
                "SELECT object_id FROM objects ORDER BY touched ASC LIMIT ?", (excess,)
            )
        return evicted

    def _delete_objects(self, select_sql: str, params: tuple) -> int:
        ids = [r[0] for r in self._db.execute(select_sql, params).fetchall()]
        self._db.executemany("DELETE FROM points WHERE object_id = ?", [(i,) for i in ids])
        self._db.executemany("DELETE FROM objects WHERE object_id = ?", [(i,) for i in ids])
        self._n_objects -= len(ids)
        return len(ids)

    def commit(self) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('touched', ?)", (self._touched,))
        self._db.commit()

    def rollback(self) -> None:
        self._db.rollback()
        row = self._db.execute("SELECT value FROM meta WHERE key = 'touched'").fetchone()
        self._touched = int(row[0]) if row else 0
        self._n_objects = self._count_rows()

    def close(self) -> None:
        self._db.close()

    # -- reads --------------------------------------------------------------------------------------
    def contains(self, object_id: str) -> bool:
        """Whether the store holds the object (all that lazy history decoding asks of the store)."""
        return (
            self._db.execute("SELECT 1 FROM objects WHERE object_id = ?", (object_id,)).fetchone() is not None
        )

    def state(self, object_id: str) -> ObjectState | None:
        row = self._db.execute(
            "SELECT object_id, n_points, last_mjd, classified_n_points, classified_mjd, n_classifications "
            "FROM objects WHERE object_id = ?",
            (object_id,),
        ).fetchone()
        return ObjectState(*row) if row else None

    def lightcurve(self, object_id: str) -> LightCurve:
        rows = self._db.execute(
            "SELECT mjd, mag, magerr, band FROM points WHERE object_id = ? ORDER BY t_ms", (object_id,)
        ).fetchall()
        if not rows:
            return LightCurve(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, dtype=object))
        mjd, mag, magerr, band = zip(*rows, strict=True)
        return LightCurve(
            np.asarray(mjd, np.float64),
            np.asarray(mag, np.float64),
            np.asarray(magerr, np.float64),
            np.asarray(band, dtype=object),
        )

    def count(self) -> int:
        """Objects held, including the open transaction's."""
        return self._n_objects

    def _count_rows(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM objects").fetchone()[0])
