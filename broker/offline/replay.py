"""Replay archival light curves as a live alert stream: one alert per detection, in time order, paced.

The detections of all selected objects are merged by time with `heapq.merge` over one iterator per
object (memory: one pending detection per object, never a sort of the whole stream). Each detection
becomes a ZTF-like alert (candidate + `history_days` of prv_candidates, default 30) or an LSST-like alert
(diaSource + prvDiaSources, default 365 days) built by `broker.codecs`, keyed by its objectId, and goes
to a sink (a Kafka topic or a folder of Avro files). Archive bands become survey bands through a band
map (V->r, I->i, B->g, R->r by default), so every archive can be replayed as either flavour.

Next to the run go `truth.csv` (objectId as the plugin will report it, archive id, class, catalogue
period, points replayed, first/last MJD) and, for LSST, the schema folder the plugin resolves ids from.
"""

from __future__ import annotations

import heapq
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from broker.errors import ConfigError
from models.lightcurve import LabelledLightCurve, LightCurve

log = logging.getLogger(__name__)

FLAVOURS = ("ztf", "lsst")
HISTORY_DAYS = {"ztf": 30.0, "lsst": 365.0}
# Archive band -> survey band. V (CRTS, ASAS-SN, OGLE) goes to r so that ASAS-SN's V and g and OGLE's V and
# I stay distinct bands; survey band names map to themselves.
DEFAULT_BAND_MAP = {"V": "r", "I": "i", "B": "g", "R": "r", **{b: b for b in "ugrizy"}}
SURVEY_BANDS = {"ztf": ("g", "r", "i"), "lsst": ("u", "g", "r", "i", "z", "y")}
SECONDS_PER_DAY = 86400.0


# ------------------------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Selection:
    """Which objects and points to replay.

    object_ids: keep only these archive ids (e.g. a held-out split); classes: keep only these labels
    (None: all, unlabelled too); limit: a random sample of this many objects (seeded, in archive order);
    max_points: the first N detections of each object; time_range: (first, last) MJD, inclusive, applied
    before max_points.
    """

    object_ids: frozenset[str] | None = None
    classes: tuple[str, ...] | None = None
    limit: int | None = None
    seed: int = 0
    max_points: int | None = None
    time_range: tuple[float, float] | None = None


def select_objects(objects: Iterable[LabelledLightCurve], selection: Selection) -> list[LabelledLightCurve]:
    """Filter by class, sample `limit` objects (reservoir sampling: one pass, O(limit) memory), cut points.

    Objects left with no points after the cuts are dropped (and logged).
    """
    wanted = set(selection.classes) if selection.classes else None
    ids = selection.object_ids
    candidates = (
        obj
        for obj in objects
        if (wanted is None or obj.label in wanted) and (ids is None or obj.object_id in ids)
    )
    if selection.limit is not None:
        if selection.limit < 1:
            raise ConfigError(f"limit must be >= 1 object, got {selection.limit}")
        chosen = _reservoir_sample(candidates, selection.limit, random.Random(selection.seed))
    else:
        chosen = list(candidates)
    kept, emptied = [], 0
    for obj in chosen:
        cut = cut_points(obj.lightcurve, selection.time_range, selection.max_points)
        if len(cut) == 0:
            emptied += 1
            continue
        kept.append(LabelledLightCurve(obj.object_id, obj.label, cut, obj.period, obj.extra))
    if emptied:
        log.warning("%d selected objects have no points in time range %s", emptied, selection.time_range)
    return kept


def _reservoir_sample(items: Iterator, k: int, rng: random.Random) -> list:
    """k items drawn uniformly from a stream of unknown length (Algorithm R), returned in stream order."""
    reservoir: list[tuple[int, object]] = []
    for n, item in enumerate(items):
        if n < k:
            reservoir.append((n, item))
        else:
            slot = rng.randrange(n + 1)
            if slot < k:
                reservoir[slot] = (n, item)
    return [item for _, item in sorted(reservoir, key=lambda pair: pair[0])]


def cut_points(lc: LightCurve, time_range: tuple[float, float] | None, max_points: int | None) -> LightCurve:
    keep = np.ones(len(lc), dtype=bool)
    if time_range is not None:
        keep &= (lc.mjd >= time_range[0]) & (lc.mjd <= time_range[1])
    index = np.flatnonzero(keep)
    if max_points is not None:
        index = index[:max_points]
    return lc.select(index)


def map_bands(lc: LightCurve, band_map: dict[str, str], flavour: str, object_id: str) -> LightCurve:
    """The light curve with survey band names; ConfigError naming any band the map or survey lacks."""
    names = {str(b) for b in lc.band}
    missing = sorted(names - band_map.keys())
    if missing:
        raise ConfigError(
            f"{object_id}: no survey band for archive band(s) {missing}; band map is {band_map}"
        )
    invalid = sorted({band_map[b] for b in names} - set(SURVEY_BANDS[flavour]))
    if invalid:
        raise ConfigError(f"band map gives {invalid}, not {flavour} bands {SURVEY_BANDS[flavour]}")
    band = np.array([band_map[str(b)] for b in lc.band], dtype=object)
    return LightCurve(lc.mjd, lc.mag, lc.magerr, band)


# ---------------------------------------------------------------------------------------------- pacing


@dataclass(frozen=True)
class Pace:
    """How fast alerts go out: "archive_time" (speed x archive time), "rate" (alerts/s) or "asap"."""

    mode: str = "asap"
    speed: float = 1.0  # archive seconds per wall second, for "archive_time"
    rate: float = 0.0  # alerts per wall second, for "rate"

    @classmethod
    def real_time(cls, speed: float = 1.0) -> Pace:
        if not speed > 0:
            raise ConfigError(f"speed must be > 0, got {speed}")
        return cls("archive_time", speed=speed)

    @classmethod
    def at_rate(cls, rate: float) -> Pace:
        if not rate > 0:
            raise ConfigError(f"rate must be > 0 alerts/s, got {rate}")
        return cls("rate", rate=rate)

    @classmethod
    def as_fast_as_possible(cls) -> Pace:
        return cls("asap")


class Pacer:
    """Sleeps so that alert n (at archive time mjd) leaves no earlier than its pace allows.

    Deadlines are absolute (start + n/rate, or start + Δmjd/speed), so sleeping late never accumulates drift.
    """

    def __init__(
        self,
        pace: Pace,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.pace, self.clock, self.sleep = pace, clock, sleep
        self.start: float | None = None
        self.mjd0 = 0.0

    def wait(self, n: int, mjd: float) -> None:
        if self.pace.mode == "asap":
            return
        if self.start is None:
            self.start, self.mjd0 = self.clock(), mjd
        if self.pace.mode == "rate":
            deadline = self.start + n / self.pace.rate
        else:
            deadline = self.start + (mjd - self.mjd0) * SECONDS_PER_DAY / self.pace.speed
        delay = deadline - self.clock()
        if delay > 0:
            self.sleep(delay)


LONG_WALL_S = 3600.0  # a real-time replay longer than this is announced (archives span years)


def warn_if_slow(pace: Pace, first_mjd: float, last_mjd: float) -> float:
    """Wall seconds a real-time pace takes over alerts from first_mjd to last_mjd; logs a warning above
    LONG_WALL_S, since the default pace replays years of archive in years."""
    if pace.mode != "archive_time" or not last_mjd > first_mjd:
        return 0.0
    wall_s = (last_mjd - first_mjd) * SECONDS_PER_DAY / pace.speed
    if wall_s > LONG_WALL_S:
        log.warning(
            "paced by their own times, the alerts span %.1f days: at --speed %g that is %.1f days of wall "
            "time (--speed, --rate or --as-fast-as-possible change it)",
            last_mjd - first_mjd,
            pace.speed,
            wall_s / SECONDS_PER_DAY,
        )
    return wall_s


# ----------------------------------------------------------------------------------------------- sinks


class AlertSink(Protocol):
    """Where replayed alerts go. flush() returns once everything sent is stored, or raises DeliveryError."""

    def send(self, key: str, value: bytes) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class FolderSink:
    """A folder of Avro files, one per alert: `<sequence>_<objectId>.avro` (ZTF: a one-alert container;
    LSST: Confluent wire format, 5-byte header + schemaless body, as on the topic)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def send(self, key: str, value: bytes) -> None:
        safe = re.sub(r"[^A-Za-z0-9._+-]+", "_", key)
        (self.folder / f"{self.count:09d}_{safe}.avro").write_bytes(value)
        self.count += 1

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------- replay


@dataclass
class ReplayStats:
    """What a replay sent. alerts_per_s is over the sending loop (building, encoding, producing, pacing)."""

    flavour: str
    n_objects: int = 0
    n_alerts: int = 0
    n_bytes: int = 0
    elapsed_s: float = 0.0
    first_mjd: float | None = None
    last_mjd: float | None = None
    truth_path: str | None = None
    schema_folder: str | None = None
    per_class: dict = field(default_factory=dict)

    @property
    def alerts_per_s(self) -> float:
        return self.n_alerts / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "alerts_per_s": self.alerts_per_s}


@dataclass(frozen=True)
class StreamObject:
    """One selected object as the stream sees it: the id the alerts carry and the mapped light curve."""

    alert_object_id: str  # ZTF objectId, or the LSST diaObjectId as text (what the plugin reports)
    archive: LabelledLightCurve
    lightcurve: LightCurve


def merged_detections(lightcurves: list[LightCurve]) -> Iterator[tuple[float, int, int]]:
    """(mjd, object index, point index) of every detection, in time order (ties: object, then point order).

    heapq.merge keeps one pending item per object; each light curve is already time-sorted.
    """

    def detections(k: int, lc: LightCurve) -> Iterator[tuple[float, int, int]]:
        for i, mjd in enumerate(lc.mjd.tolist()):
            yield mjd, k, i

    return heapq.merge(*(detections(k, lc) for k, lc in enumerate(lightcurves)))


class AlertFactory:
    """Builds and encodes the alert of point i of an object, in one flavour (codecs imported lazily)."""

    def __init__(self, flavour: str, history_days: float | None = None, schema_id: int | None = None) -> None:
        if flavour not in FLAVOURS:
            raise ConfigError(f"flavour must be one of {FLAVOURS}, got {flavour!r}")
        from broker import codecs

        self.codecs = codecs
        self.flavour = flavour
        self.history_days = HISTORY_DAYS[flavour] if history_days is None else float(history_days)
        self.schema_id = codecs.VARSTREAM_LSST_SCHEMA_ID if schema_id is None else schema_id

    def alert_object_id(self, archive_id: str) -> str:
        return archive_id if self.flavour == "ztf" else str(self.codecs.lsst_object_id(archive_id))

    def build(self, archive_id: str, lc: LightCurve, index: int) -> dict:
        alert_id = self.codecs.point_id(archive_id, index)
        if self.flavour == "ztf":
            return self.codecs.build_ztf_alert(archive_id, alert_id, lc, index, self.history_days)
        return self.codecs.build_lsst_alert(archive_id, alert_id, lc, index, self.history_days)

    def encode(self, alert: dict) -> bytes:
        if self.flavour == "ztf":
            return self.codecs.encode_ztf(alert)
        return self.codecs.encode_lsst(alert, self.schema_id)

    def write_schema_folder(self, run_dir: Path) -> Path:
        """run_dir/schemas/<schema id>.avsc, the folder a SchemaResolver reads; returns the folder."""
        return self.codecs.write_schema_folder(run_dir / "schemas").parent


def prepare(
    objects: Iterable[LabelledLightCurve], factory: AlertFactory, band_map: dict[str, str]
) -> list[StreamObject]:
    """Map bands and alert ids; ConfigError when two objects would share an alert objectId."""
    prepared, seen = [], {}
    for obj in objects:
        alert_id = factory.alert_object_id(obj.object_id)
        if alert_id in seen:
            raise ConfigError(
                f"objects {seen[alert_id]!r} and {obj.object_id!r} map to one objectId {alert_id}"
            )
        seen[alert_id] = obj.object_id
        lightcurve = map_bands(obj.lightcurve, band_map, factory.flavour, obj.object_id)
        prepared.append(StreamObject(alert_id, obj, lightcurve))
    return prepared


def write_truth(path: Path, stream: list[StreamObject]) -> Path:
    """truth.csv: one row per replayed object, keyed by the objectId its alerts (and annotations) carry."""
    from broker.offline.truth import truth_row
    from broker.offline.truth import write_truth as write_rows

    return write_rows(path, (truth_row(s.archive, s.alert_object_id, s.lightcurve) for s in stream))


def replay(
    archive_objects: Iterable[LabelledLightCurve],
    sink: AlertSink,
    flavour: str = "ztf",
    pace: Pace | None = None,
    *,
    selection: Selection | None = None,
    run_dir: str | Path | None = None,
    band_map: dict[str, str] | None = None,
    history_days: float | None = None,
    schema_id: int | None = None,
    progress: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayStats:
    """Send one alert per detection of the selected objects to `sink`, in time order, at `pace`.

    Writes `run_dir/truth.csv` (and `run_dir/schemas/` for LSST) before the first alert, so a consumer
    may start scoring at once; flushes the sink at the end (DeliveryError if anything was not delivered).
    """
    pace = pace or Pace.as_fast_as_possible()
    factory = AlertFactory(flavour, history_days, schema_id)
    selected = select_objects(archive_objects, selection or Selection())
    stream = prepare(selected, factory, DEFAULT_BAND_MAP if band_map is None else band_map)
    stats = ReplayStats(flavour=flavour, n_objects=len(stream))
    for item in stream:
        label = item.archive.label or ""
        stats.per_class[label] = stats.per_class.get(label, 0) + 1
    if run_dir is not None:
        run_dir = Path(run_dir)
        stats.truth_path = str(write_truth(run_dir / "truth.csv", stream))
        if flavour == "lsst":
            stats.schema_folder = str(factory.write_schema_folder(run_dir))
    total = sum(len(item.lightcurve) for item in stream)
    spans = [(float(i.lightcurve.mjd[0]), float(i.lightcurve.mjd[-1])) for i in stream if len(i.lightcurve)]
    if spans:
        warn_if_slow(pace, min(a for a, _ in spans), max(b for _, b in spans))
    pacer = Pacer(pace, clock, sleep)
    from tqdm import tqdm

    with tqdm(total=total, unit="alert", disable=not progress, mininterval=0.5, smoothing=0.1) as bar:
        started = clock()
        for n, (mjd, k, i) in enumerate(merged_detections([item.lightcurve for item in stream])):
            item = stream[k]
            payload = factory.encode(factory.build(item.archive.object_id, item.lightcurve, i))
            pacer.wait(n, mjd)
            sink.send(item.alert_object_id, payload)
            stats.n_alerts += 1
            stats.n_bytes += len(payload)
            stats.first_mjd = mjd if stats.first_mjd is None else stats.first_mjd
            stats.last_mjd = mjd
            bar.update(1)
        sink.flush()
        stats.elapsed_s = clock() - started
    return stats
