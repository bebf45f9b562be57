"""Per-object light-curve store, partitioned like the input: store → partition → transaction (as Quix's).

One SQLite file per assigned input partition (`<path stem>.<topic>.<partition>.sqlite` next to
`store.path`), rather than one file with a partition column: a partition moves between instances as a unit,
so it is opened, restored, closed or deleted as a file, and a restore from the changelog never locks the
partitions that keep processing. Each file holds one row per object whose value is the object's encoded
state (broker.state_codec: the same bytes as its changelog record), plus `meta`: the next input offset the
partition reflects and the next changelog offset it has applied.

Hot path: a write-through LRU cache of decoded objects; a merge adds only the alert's new points (per-band
watermark, vectorised lookups; no per-point SQL), and a batch's writes run as a few executemany statements
at flush. Nothing reaches SQLite before the flush, so a rollback only forgets the transaction; a crash rolls
the file back to the last flushed batch (the changelog then repairs it, see broker.pipeline).

Points are deduplicated by (band, time rounded to 1 ms). Bounds (`StoreConfig`, per partition): max objects
(least recently updated evicted), max points per object (oldest dropped), optional idle age.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from broker.config import StoreConfig
from broker.state_codec import StoredObject, decode_state, encode_state
from models.lightcurve import LightCurve

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    object_id TEXT PRIMARY KEY,
    touched INTEGER NOT NULL,       -- partition-wide update counter, for least-recently-updated eviction
    last_mjd REAL NOT NULL,         -- latest detection time, for idle eviction
    state BLOB NOT NULL             -- broker.state_codec encoding
);
CREATE INDEX IF NOT EXISTS objects_touched ON objects (touched);
CREATE INDEX IF NOT EXISTS objects_last_mjd ON objects (last_mjd);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""
_UPSERT = (
    "INSERT INTO objects VALUES (?, ?, ?, ?) ON CONFLICT(object_id) DO UPDATE SET "
    "touched = excluded.touched, last_mjd = excluded.last_mjd, state = excluded.state"
)
NO_OFFSET = -1


@dataclass(frozen=True)
class ObjectState:
    """What the trigger policy needs to know about an object."""

    object_id: str
    n_points: int
    last_mjd: float
    classified_n_points: int  # 0 = never classified
    classified_mjd: float | None
    n_classifications: int


def _summary(object_id: str, obj: StoredObject) -> ObjectState:
    return ObjectState(
        object_id, obj.n_points, obj.last_mjd, obj.classified_n_points, obj.classified_mjd,
        obj.n_classifications,
    )  # fmt: skip


class StorePartition:
    """The objects of one input partition in one SQLite file; one open transaction at a time."""

    def __init__(self, path: Path, config: StoreConfig) -> None:
        self.path = path
        self.config = config
        self.existed = path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level="DEFERRED", check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.commit()
        self._cache: OrderedDict[str, StoredObject] = OrderedDict()
        self._meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        self._n_objects = self._count_rows()

    # -- bookkeeping ---------------------------------------------------------------------------------
    @property
    def input_offset(self) -> int:
        """Next input offset this partition's state reflects (NO_OFFSET: none yet)."""
        return int(self._meta.get("input_offset", NO_OFFSET))

    @property
    def changelog_offset(self) -> int:
        """Next changelog offset to apply (NO_OFFSET: nothing applied: restore from the beginning)."""
        return int(self._meta.get("changelog_offset", NO_OFFSET))

    def count(self) -> int:
        return self._n_objects

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())

    def contains(self, object_id: str) -> bool:
        """Whether the object has committed state here (a cache hit or one index lookup)."""
        if object_id in self._cache:
            return True
        row = self._db.execute("SELECT 1 FROM objects WHERE object_id = ?", (object_id,)).fetchone()
        return row is not None

    def history_state(self, object_id: str) -> tuple[int | None, int | None] | None:
        """The lazy-history policy's committed state of the object (broker.history.Lookup): None when
        the object is not held here, else (alerts since its history was last read, last n_detections)."""
        obj = self._load(object_id)
        return None if obj is None else (obj.alerts_since_history, obj.last_n_detections)

    # -- transactions --------------------------------------------------------------------------------
    def begin(self) -> PartitionTransaction:
        return PartitionTransaction(self)

    def set_offsets(self, input_offset: int | None = None, changelog_offset: int | None = None) -> None:
        """Record offsets outside a batch (after a restore) and commit them."""
        self._write_meta(input_offset, changelog_offset)
        self._db.commit()

    def apply_changelog(self, records: Iterable[tuple[str, bytes | None]], next_offset: int) -> int:
        """Restore: upsert each (objectId, state) record, delete tombstones (None), in one commit."""
        touched = int(self._meta.get("touched", 0))
        upserts, deletes = [], []
        for object_id, value in records:
            self._cache.pop(object_id, None)
            if value is None:
                deletes.append((object_id,))
            else:
                touched += 1
                upserts.append((object_id, touched, decode_state(value).last_mjd, value))
        self._db.executemany(_UPSERT, upserts)
        self._db.executemany("DELETE FROM objects WHERE object_id = ?", deletes)
        self._meta["touched"] = touched
        self._write_meta(None, next_offset)
        self._db.commit()
        self._n_objects = self._count_rows()
        return len(upserts) + len(deletes)

    def wipe(self) -> None:
        """Forget everything (the changelog was reset): the next restore starts from its beginning."""
        self._db.execute("DELETE FROM objects")
        self._db.execute("DELETE FROM meta")
        self._db.commit()
        self._meta.clear()
        self._cache.clear()
        self._n_objects = 0

    def close(self) -> None:
        self._db.close()
        self._cache.clear()

    # -- internals -----------------------------------------------------------------------------------
    def _load(self, object_id: str) -> StoredObject | None:
        obj = self._cache.get(object_id)
        if obj is not None:
            self._cache.move_to_end(object_id)
            return obj
        row = self._db.execute("SELECT state FROM objects WHERE object_id = ?", (object_id,)).fetchone()
        if row is None:
            return None
        obj = decode_state(row[0])
        self._remember(object_id, obj)
        return obj

    def _remember(self, object_id: str, obj: StoredObject) -> None:
        self._cache[object_id] = obj
        self._cache.move_to_end(object_id)
        while len(self._cache) > self.config.cache_objects:
            self._cache.popitem(last=False)

    def _write_meta(self, input_offset: int | None, changelog_offset: int | None) -> None:
        if input_offset is not None:
            self._meta["input_offset"] = input_offset
        if changelog_offset is not None:
            self._meta["changelog_offset"] = changelog_offset
        self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(self._meta.items()))

    def _count_rows(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM objects").fetchone()[0])


class PartitionTransaction:
    """One batch's changes to a partition, held in memory until `prepare()` and `commit()`.

    prepare() writes them and applies the bounds inside an open SQLite transaction and returns the
    changelog records (objectId, state bytes or None for a tombstone); commit() records the offsets and
    commits; rollback() forgets all of it.
    """

    def __init__(self, partition: StorePartition) -> None:
        self.partition = partition
        self._objects: dict[str, StoredObject] = {}  # every object this batch merged, in merge order
        self._changed: set[str] = set()  # ... whose state differs from the committed one
        self._new: set[str] = set()  # ... that had no committed state
        self._touched = int(partition._meta.get("touched", 0))
        self._evicted: list[str] = []
        self._prepared = False

    def merge(self, object_id: str, lc: LightCurve) -> ObjectState:
        """Add an alert's points to the object (duplicates ignored) and return its updated state."""
        obj = self._get(object_id)
        if obj is None:
            obj = StoredObject.empty()
            self._new.add(object_id)
            self._changed.add(object_id)
        merged, added = obj.merge(lc, self.partition.config.max_points_per_object)
        if added:
            self._changed.add(object_id)
        self._objects.pop(object_id, None)  # re-insert: merge order is update order
        self._objects[object_id] = merged
        return _summary(object_id, merged)

    def mark_classified(self, object_id: str, n_points: int, mjd: float) -> None:
        self._objects[object_id] = self._objects[object_id].classified(n_points, mjd)
        self._changed.add(object_id)

    def set_history(self, object_id: str, state: tuple[int | None, int | None] | None) -> None:
        """Store the history policy's state with an object this batch merged (None: unknown)."""
        obj = self._objects[object_id]
        since, last_n = state or (None, None)
        if (obj.alerts_since_history, obj.last_n_detections) != (since, last_n):
            self._objects[object_id] = obj.with_history(since, last_n)
            self._changed.add(object_id)

    @property
    def merged(self) -> list[str]:
        """The objects this batch merged, in update order."""
        return list(self._objects)

    def state(self, object_id: str) -> ObjectState | None:
        obj = self._get(object_id)
        return None if obj is None else _summary(object_id, obj)

    def lightcurve(self, object_id: str) -> LightCurve:
        obj = self._get(object_id)
        return (obj or StoredObject.empty()).lightcurve()

    def contains(self, object_id: str) -> bool:
        return object_id in self._objects or self.partition.contains(object_id)

    def count(self) -> int:
        """Objects held, including this transaction's new ones."""
        return self.partition._n_objects + len(self._new) - len(self._evicted)

    def prepare(self) -> list[tuple[str, bytes | None]]:
        """Write the batch into an open SQLite transaction, apply the bounds; the changelog records."""
        db, config = self.partition._db, self.partition.config
        records: list[tuple[str, bytes | None]] = []
        upserts, touches = [], []
        for object_id, obj in self._objects.items():
            self._touched += 1
            if object_id in self._changed:
                value = encode_state(obj)
                records.append((object_id, value))
                upserts.append((object_id, self._touched, obj.last_mjd, value))
            else:
                touches.append((self._touched, object_id))
        db.executemany(_UPSERT, upserts)
        db.executemany("UPDATE objects SET touched = ? WHERE object_id = ?", touches)
        evicted: list[str] = []
        if config.max_idle_days > 0:
            (latest,) = db.execute("SELECT MAX(last_mjd) FROM objects").fetchone()
            if latest is not None:
                sql = "SELECT object_id FROM objects WHERE last_mjd < ?"
                evicted += [r[0] for r in db.execute(sql, (latest - config.max_idle_days,))]
                db.executemany("DELETE FROM objects WHERE object_id = ?", [(i,) for i in evicted])
        excess = self.partition._n_objects + len(self._new) - len(evicted) - config.max_objects
        if excess > 0:
            sql = "SELECT object_id FROM objects ORDER BY touched ASC LIMIT ?"
            lru = [r[0] for r in db.execute(sql, (excess,))]
            db.executemany("DELETE FROM objects WHERE object_id = ?", [(i,) for i in lru])
            evicted += lru
        self._evicted = evicted
        gone = set(evicted)
        records = [r for r in records if r[0] not in gone] + [(i, None) for i in evicted]
        self._prepared = True
        return records

    @property
    def evicted(self) -> list[str]:
        return list(self._evicted)

    def commit(self, input_offset: int | None = None, changelog_offset: int | None = None) -> None:
        """Make the batch durable with the offsets it reflects (prepare() first, if the caller did not)."""
        if not self._prepared:
            self.prepare()
        p = self.partition
        p._meta["touched"] = self._touched
        p._write_meta(input_offset, changelog_offset)
        p._db.commit()
        p._n_objects = self.count()
        for object_id in self._evicted:
            p._cache.pop(object_id, None)
        gone = set(self._evicted)
        for object_id, obj in self._objects.items():
            if object_id not in gone:
                p._remember(object_id, obj)
        self._objects.clear()

    def rollback(self) -> None:
        self.partition._db.rollback()
        self._objects.clear()
        self._changed.clear()
        self._new.clear()
        self._evicted = []

    def _get(self, object_id: str) -> StoredObject | None:
        obj = self._objects.get(object_id)
        return obj if obj is not None else self.partition._load(object_id)


class LightCurveStore:
    """The store partitions of one instance, keyed by (input topic, partition)."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self._partitions: dict[tuple[str, int], StorePartition] = {}

    def path_of(self, topic: str, partition: int) -> Path:
        base = Path(self.config.path)
        stem = base.name[: -len(base.suffix)] if base.suffix else base.name
        return base.with_name(f"{stem}.{topic}.{partition}.sqlite")

    def open(self, topic: str, partition: int) -> StorePartition:
        key = (topic, partition)
        if key not in self._partitions:
            self._partitions[key] = StorePartition(self.path_of(topic, partition), self.config)
        return self._partitions[key]

    def get(self, topic: str, partition: int) -> StorePartition:
        return self._partitions[(topic, partition)]

    def close_partition(self, topic: str, partition: int) -> None:
        part = self._partitions.pop((topic, partition), None)
        if part is not None:
            part.close()

    @property
    def partitions(self) -> dict[tuple[str, int], StorePartition]:
        return dict(self._partitions)

    def contains(self, object_id: str) -> bool:
        """Whether any open partition holds the object (keyed input: at most one does)."""
        return any(p.contains(object_id) for p in self._partitions.values())

    def count(self) -> int:
        return sum(p.count() for p in self._partitions.values())

    def size_bytes(self) -> int:
        return sum(p.size_bytes() for p in self._partitions.values())

    def close(self) -> None:
        for key in list(self._partitions):
            self.close_partition(*key)
