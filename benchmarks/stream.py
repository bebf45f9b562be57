"""The end-to-end bench's input: interleaved alerts of real CRTS light curves carrying long histories.

A live survey's alerts come for objects observed for years: the plugin's store already holds them, each
was last classified somewhere in its trigger cycle, and each alert carries a full history window. So:
- a warm-up stream fills the store and leaves each object at a random point of its trigger cycle (see
  `warm_up_points`);
- the measured stream is the last 30 detections of every object, merged by time across
  the 200 objects
  as a survey night interleaves them, built with the replay's own `AlertFactory` from the whole light
  curve, so they re-trigger classifications at the default trigger's steady-state rate.

History windows of the measured alerts:
- ZTF-like: 30 days, as ZTF sends (CRTS's cadence puts ~10 points there).
- LSST-like: an LSST alert carries 12 months of history, ~300 sources (~40 KB). CRTS observes an object
  ~34 times in 12 months, so a 365-day window on CRTS would give alerts 9x smaller than LSST's. The LSST
  stream therefore carries every earlier point (~350 sources, ~44 KB): the size of a 12-month LSST
  history, on real light curves. `StreamStats` reports the sources and KB per alert.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

import numpy as np

from broker.config import TriggerConfig
from broker.offline.archives import open_archive
from broker.offline.demo import DEFAULT_CRTS
from broker.offline.replay import DEFAULT_BAND_MAP, AlertFactory, Pace, Pacer, merged_detections, prepare

N_OBJECTS = 200
# Measured alerts per object (at most one trigger cycle, ~33). LSST-like alerts cost ~10 ms each to build
# (fastavro, ~350 sources), so 30 per object makes the build ~1.5 min; with 10 the paced LSST run lasted
# ~3 s and its p99 was the largest of 60 latencies, most of them from the run's first second.
ALERTS_PER_OBJECT = {"ztf": 30, "lsst": 30}
MIN_POINTS = 330  # objects with this many detections: ~300 sources of history before their last alerts
HISTORY_DAYS = {"ztf": 30.0, "lsst": 3650.0}
WARM_UP_HISTORY_DAYS = 3650.0  # the warm-up alert carries every earlier point


@dataclass
class StreamStats:
    flavour: str
    objects: int
    alerts: int
    history_days: float
    mean_history_points: float
    mean_kb: float
    build_s: float

    def as_dict(self) -> dict:
        return asdict(self)


def long_objects(n_objects: int = N_OBJECTS, min_points: int = MIN_POINTS) -> list:
    """The first `n_objects` CRTS objects (archive order: deterministic) with >= `min_points` detections."""
    chosen = []
    for obj in open_archive(f"crts:{DEFAULT_CRTS}"):
        if len(obj.lightcurve) >= min_points:
            chosen.append(obj)
            if len(chosen) == n_objects:
                break
    if len(chosen) < n_objects:
        raise RuntimeError(f"only {len(chosen)} CRTS objects have >= {min_points} points")
    return chosen


def warm_up_points(objects: list, alerts_per_object: int, seed: int = 0) -> list[int]:
    """Index of each object's warm-up detection, U[0, one trigger cycle) before its measured alerts.

    In a live stream the store already holds each object and each was last classified at a random point
    of its trigger cycle. The warm-up alert (every earlier point as history) puts the object in the store
    and gets it classified; the detections between it and the measured ones go in the warm-up too. So
    the measured alerts (the last alerts_per_object of each object, at most one cycle) re-trigger
    classifications at the default trigger's steady-state rate, one per cycle of ~10% growth.
    """
    rng = np.random.default_rng(seed)
    growth = TriggerConfig().min_new_fraction
    out = []
    for obj in objects:
        first_measured = len(obj.lightcurve) - alerts_per_object
        cycle = int(np.ceil(growth * first_measured))
        out.append(max(0, first_measured - 1 - int(rng.integers(0, cycle))))
    return out


def alert_indices(objects: list, firsts: list[int], ends: list[int]) -> Iterator[tuple[int, int]]:
    """(object k, point index) of detections firsts[k] .. ends[k] - 1 of every object, merged by time."""
    tails = [
        obj.lightcurve.select(np.arange(first, end))
        for obj, first, end in zip(objects, firsts, ends, strict=True)
    ]
    for _mjd, k, i in merged_detections(tails):
        yield k, firsts[k] + i


def iter_payloads(
    objects: list, flavour: str, indices: Iterable[tuple[int, int]], history_days: float | None = None
) -> Iterator[tuple[str, bytes, int]]:
    """(key, Avro bytes, history points) of the alerts at `indices`, in that order, built lazily."""
    factory = AlertFactory(flavour, HISTORY_DAYS[flavour] if history_days is None else history_days)
    stream = prepare(objects, factory, DEFAULT_BAND_MAP)
    for k, i in indices:
        item = stream[k]
        lc = item.lightcurve
        history = int(np.count_nonzero(lc.mjd[:i] >= lc.mjd[i] - factory.history_days))
        yield item.alert_object_id, factory.encode(factory.build(item.archive.object_id, lc, i)), history


def build_streams(
    objects: list, flavour: str, alerts_per_object: int | None = None, seed: int = 0
) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]], StreamStats]:
    """(warm-up payloads, measured payloads in send order, what the measured ones hold).

    Warm-up: each object's warm-up alert (every earlier point as history), then the detections up to the
    measured ones without history (the store holds it already). Measured: the last alerts_per_object
    detections of every object with the flavour's history window.
    """
    started = time.perf_counter()
    alerts_per_object = alerts_per_object or ALERTS_PER_OBJECT[flavour]
    firsts = warm_up_points(objects, alerts_per_object, seed)
    lengths = [len(obj.lightcurve) for obj in objects]
    measured_from = [n - alerts_per_object for n in lengths]
    warm = list(iter_payloads(objects, flavour, enumerate(firsts), WARM_UP_HISTORY_DAYS))
    between = alert_indices(objects, [f + 1 for f in firsts], measured_from)
    warm += list(iter_payloads(objects, flavour, between, history_days=0.0))
    built = list(iter_payloads(objects, flavour, alert_indices(objects, measured_from, lengths)))
    stats = StreamStats(
        flavour=flavour,
        objects=len(objects),
        alerts=len(built),
        history_days=HISTORY_DAYS[flavour],
        mean_history_points=float(np.mean([h for _, _, h in built])),
        mean_kb=float(np.mean([len(v) for _, v, _ in built]) / 1e3),
        build_s=time.perf_counter() - started,
    )
    return [(k, v) for k, v, _ in warm], [(k, v) for k, v, _ in built], stats


def every_detection(objects: list, flavour: str) -> Iterator[tuple[str, bytes, int]]:
    """Every detection of every object from the first, merged by time (the long run; cold store)."""
    lengths = [len(obj.lightcurve) for obj in objects]
    return iter_payloads(objects, flavour, alert_indices(objects, [0] * len(objects), lengths))


def send(sink, payloads: Iterable[tuple], rate: float | None = None, duration_s: float | None = None) -> int:
    """Produce (key, value, ...) items to `sink`, as fast as possible or at `rate` alerts/s; returns the
    count sent. duration_s: stop after this long (the long run). The sink is flushed either way."""
    pacer = Pacer(Pace.at_rate(rate) if rate else Pace.as_fast_as_possible())
    started = time.monotonic()
    sent = 0
    for n, (key, value, *_rest) in enumerate(payloads):
        if duration_s is not None and time.monotonic() - started > duration_s:
            break
        pacer.wait(n, 0.0)
        sink.send(key, value)
        sent += 1
    sink.flush()
    return sent
