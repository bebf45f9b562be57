"""Replay: heap merge order, pacing, selection, sinks, and archive -> alerts -> plugin decoder round trips."""

from __future__ import annotations

import csv
import functools
import itertools
import json
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from broker.codecs import SchemaResolver, decode
from broker.errors import ArchiveError, ConfigError, DeliveryError
from broker.kafka_io import KafkaSink
from broker.offline.archives.base import open_archive
from broker.offline.replay import (
    DEFAULT_BAND_MAP,
    HISTORY_DAYS,
    FolderSink,
    Pace,
    Pacer,
    Selection,
    cut_points,
    merged_detections,
    replay,
    select_objects,
)
from broker.offline.truth import TRUTH_COLUMNS
from models.lightcurve import LabelledLightCurve, LightCurve

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "archives"
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def make_object(object_id: str, mjd, label: str = "RRab", band: str = "V") -> LabelledLightCurve:
    mjd = np.asarray(mjd, np.float64)
    mag = 15.0 + 0.3 * np.sin(mjd)
    return LabelledLightCurve(
        object_id, label, LightCurve.from_arrays(mjd, mag, np.full(len(mjd), 0.02), band)
    )


def read_rows(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


class ListSink:
    """Keeps what it is sent (the sink protocol's simplest implementation)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.flushed = 0

    def send(self, key: str, value: bytes) -> None:
        self.sent.append((key, value))

    def flush(self) -> None:
        self.flushed += 1

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------------------ merge order


def test_heap_merge_yields_every_detection_in_time_order():
    rng = np.random.default_rng(3)
    curves = [LightCurve.from_arrays(rng.uniform(0, 100, n), np.zeros(n), np.ones(n)) for n in (5, 40, 1, 17)]
    merged = list(merged_detections(curves))
    expected = sorted((float(lc.mjd[i]), k, i) for k, lc in enumerate(curves) for i in range(len(lc)))
    assert merged == expected


def test_merge_is_lazy_and_breaks_ties_by_object_then_point():
    curves = [
        LightCurve.from_arrays([1.0, 2.0, 2.0], [0, 0, 0], [1, 1, 1]),
        LightCurve.from_arrays([2.0], [0], [1]),
    ]
    stream = merged_detections(curves)
    assert next(stream) == (1.0, 0, 0)  # a generator: nothing else computed yet
    assert list(stream) == [(2.0, 0, 1), (2.0, 0, 2), (2.0, 1, 0)]


# ---------------------------------------------------------------------------------------------- pacing


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_rate_pacing_spaces_alerts_by_one_over_rate():
    clock = FakeClock()
    pacer = Pacer(Pace.at_rate(50.0), clock, clock.sleep)
    for n in range(11):
        pacer.wait(n, mjd=60000.0 + n)  # archive times do not matter at a fixed rate
    assert clock.now - 100.0 == pytest.approx(10 / 50.0)
    assert clock.sleeps == pytest.approx([0.02] * 10)


def test_archive_time_pacing_follows_the_archive_clock_times_speed():
    clock = FakeClock()
    pacer = Pacer(Pace.real_time(speed=86400.0), clock, clock.sleep)  # one archive day per wall second
    for n, mjd in enumerate([60000.0, 60000.5, 60000.5, 60003.0]):
        pacer.wait(n, mjd)
    assert clock.now - 100.0 == pytest.approx(3.0)
    assert clock.sleeps == pytest.approx([0.5, 2.5])


def test_a_late_pacer_does_not_sleep_and_does_not_drift():
    clock = FakeClock()
    pacer = Pacer(Pace.at_rate(10.0), clock, clock.sleep)
    pacer.wait(0, 0.0)
    clock.now += 0.35  # building the alerts took longer than 3 slots
    for n in (1, 2, 3, 4):
        pacer.wait(n, 0.0)
    assert clock.sleeps == pytest.approx([0.05])  # only alert 4 waits, for its absolute deadline
    assert clock.now - 100.0 == pytest.approx(0.4)


def test_replay_at_a_rate_takes_the_time_it_should():
    objects = [make_object(f"obj{k}", np.arange(k, 60 + k, 3.0)) for k in range(3)]  # 60 detections
    sink = ListSink()
    started = time.monotonic()
    stats = replay(objects, sink, "ztf", Pace.at_rate(200.0))
    elapsed = time.monotonic() - started
    assert stats.n_alerts == 60 and len(sink.sent) == 60 and sink.flushed == 1
    assert 59 / 200.0 <= elapsed < 59 / 200.0 + 1.5
    assert stats.alerts_per_s == pytest.approx(60 / stats.elapsed_s)


def test_pace_settings_are_checked():
    with pytest.raises(ConfigError, match="rate must be > 0"):
        Pace.at_rate(0)
    with pytest.raises(ConfigError, match="speed must be > 0"):
        Pace.real_time(-1)


# ------------------------------------------------------------------------------------------- selection


def test_selection_by_class_limit_and_seed():
    objects = [make_object(f"o{k:02d}", [1.0, 2.0], label="EW" if k % 3 else "RRab") for k in range(30)]
    rrab = select_objects(objects, Selection(classes=("RRab",)))
    assert [o.object_id for o in rrab] == [f"o{k:02d}" for k in range(0, 30, 3)]
    sample = select_objects(objects, Selection(limit=7, seed=1))
    ids = [o.object_id for o in sample]
    assert len(ids) == 7 and ids == sorted(ids)  # archive order kept
    assert ids == [o.object_id for o in select_objects(objects, Selection(limit=7, seed=1))]
    assert ids != [o.object_id for o in select_objects(objects, Selection(limit=7, seed=2))]
    assert len(select_objects(objects, Selection(limit=100))) == 30
    with pytest.raises(ConfigError, match="limit must be >= 1"):
        select_objects(objects, Selection(limit=0))


def test_time_range_then_first_n_points():
    lc = make_object("x", np.arange(10.0)).lightcurve
    np.testing.assert_array_equal(cut_points(lc, (2.5, 8.0), 3).mjd, [3.0, 4.0, 5.0])
    np.testing.assert_array_equal(cut_points(lc, None, 2).mjd, [0.0, 1.0])
    objects = [make_object("early", [1.0, 2.0]), make_object("late", [5.0, 6.0])]
    assert [o.object_id for o in select_objects(objects, Selection(time_range=(4.0, 9.0)))] == ["late"]


def test_bands_ids_and_duplicates_are_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"no survey band for archive band\(s\) \['K'\]"):
        replay([make_object("x", [1.0], band="K")], ListSink(), "ztf")
    with pytest.raises(ConfigError, match=r"band map gives \['y'\], not ztf bands"):
        replay([make_object("x", [1.0], band="y")], ListSink(), "ztf")
    with pytest.raises(ConfigError, match="map to one objectId"):
        replay([make_object("x", [1.0]), make_object("x", [2.0])], ListSink(), "ztf")
    with pytest.raises(ConfigError, match="flavour must be one of"):
        replay([make_object("x", [1.0])], ListSink(), "gaia")


def test_truth_file_describes_every_replayed_object(tmp_path):
    objects = [
        make_object("OGLE-A", [5.0, 6.0, 9.5], label="Cep"),
        make_object("12345", [1.0, 2.0], label=""),
    ]
    objects[0] = LabelledLightCurve("OGLE-A", "Cep", objects[0].lightcurve, period=3.25)
    stats = replay(objects, ListSink(), "lsst", run_dir=tmp_path)
    rows = read_rows(stats.truth_path)
    from broker.codecs import lsst_object_id

    assert rows[0] == {
        "objectId": str(lsst_object_id("OGLE-A")),
        "archive_id": "OGLE-A",
        "class": "Cep",
        "period": "3.25",
        "n_points": "3",
        "first_mjd": "5.0",
        "last_mjd": "9.5",
        **dict.fromkeys(TRUTH_COLUMNS[7:], ""),  # generator parameters: none for archives
    }
    assert tuple(rows[0]) == TRUTH_COLUMNS  # one schema with `varstream generate`
    assert rows[1]["objectId"] == "12345" and rows[1]["class"] == "" and rows[1]["period"] == ""
    assert (tmp_path / "schemas").is_dir() and stats.schema_folder == str(tmp_path / "schemas")


# ----------------------------------------------------------------------------------------------- sinks


def test_folder_sink_writes_one_file_per_alert(tmp_path):
    sink = FolderSink(tmp_path / "alerts")
    sink.send("ASASSN-V J0000+01", b"one")
    sink.send("ZTF18abc", b"two")
    assert sorted(p.name for p in (tmp_path / "alerts").iterdir()) == [
        "000000000_ASASSN-V_J0000+01.avro",
        "000000001_ZTF18abc.avro",
    ]


def test_kafka_sink_fails_loudly_when_nothing_is_delivered():
    sink = KafkaSink(
        "127.0.0.1:1", "nowhere", {"message.timeout.ms": 1500, "socket.connection.setup.timeout.ms": 1000}
    )
    sink.send("x", b"payload")
    with pytest.raises(
        DeliveryError, match=r"1 alert\(s\) not delivered to topic 'nowhere'; first: .*key b'x'"
    ):
        sink.flush(timeout_s=10)
    with pytest.raises(DeliveryError):
        sink.send("y", b"more")  # later sends refuse to carry on as if nothing happened


# ------------------------------------------------------------------------------------------ round trips


@functools.cache
def archive_objects(name: str) -> tuple[LabelledLightCurve, ...]:
    """Objects of one archive, read once per test process; the real sets are cut to keep tests fast."""
    if name == "ogle":
        return tuple(open_archive(f"ogle:{FIXTURES / 'ogle3'}", bands="I,V"))
    if name == "asassn":
        return tuple(open_archive(f"asassn:{FIXTURES / 'asassn'}"))
    if name == "csv":
        return tuple(
            open_archive(
                f"csv:{FIXTURES / 'asassn' / 'ASASSN-V_J000012.34+101112.3.csv'}",
                time_col="hjd",
                mag_col="mag",
                err_col="mag_err",
                band="g",
                time_format="jd",
            )
        )
    selection = Selection(limit=3, seed=5, max_points=70)
    if name == "crts":  # the first light curves of the real tarball, through the reader's folder mode
        folder = Path(tempfile.mkdtemp(prefix="crts-"))
        with tarfile.open(SHARED_DATA / "crts_kvmu" / "raw-lc_17-05-2017_1615.tar.xz") as tar:
            members = (m for m in tar if m.isfile() and m.name.endswith(".csv"))
            for member in itertools.islice(members, 3):
                (folder / Path(member.name).name).write_bytes(tar.extractfile(member).read())
        objects = tuple(select_objects(open_archive(f"crts:{folder}"), selection))
        shutil.rmtree(folder)
        return objects
    if name == "eros":
        return tuple(select_objects(open_archive(f"eros:{SHARED_DATA / 'eros1_ramp'}"), selection))
    if name == "ogle4":  # real OGLE-IV LMC Cepheids, I and V, HJD-2450000 in a tarball
        archive = open_archive(f"ogle:{SHARED_DATA / 'ogle_lmc_cepheids'}", bands="I,V")
        return tuple(select_objects(archive, Selection(limit=3, seed=5, max_points=120)))
    raise ValueError(name)


@pytest.mark.parametrize("flavour", ["ztf", "lsst"])
@pytest.mark.parametrize("archive", ["ogle", "ogle4", "asassn", "csv", "crts", "eros"])
def test_archive_alerts_decode_back_to_the_same_objects_and_photometry(archive, flavour, tmp_path):
    objects = archive_objects(archive)
    stats = replay(objects, FolderSink(tmp_path / "alerts"), flavour, run_dir=tmp_path)
    resolver = SchemaResolver(folders=[tmp_path / "schemas"]) if flavour == "lsst" else None
    files = sorted((tmp_path / "alerts").iterdir())
    alerts = [decode(f.read_bytes(), flavour, resolver) for f in files]
    assert len(alerts) == stats.n_alerts == sum(len(o.lightcurve) for o in objects)
    assert all(a.survey == flavour for a in alerts)
    assert np.all(np.diff([a.mjd for a in alerts]) >= 0)  # the stream is in time order
    truth = {row["archive_id"]: row for row in read_rows(tmp_path / "truth.csv")}
    assert len(truth) == len(objects)
    history = HISTORY_DAYS[flavour]
    for obj in objects:
        lc = obj.lightcurve
        mine = [a for a in alerts if a.object_id == truth[obj.object_id]["objectId"]]
        assert truth[obj.object_id]["class"] == (obj.label or "") and int(
            truth[obj.object_id]["n_points"]
        ) == len(lc)
        np.testing.assert_allclose([a.mjd for a in mine], lc.mjd, rtol=0, atol=1e-6)
        assert len({a.alert_id for a in mine}) == len(mine)
        for alert in mine:  # each alert carries its detection plus the history window before it
            window = (lc.mjd >= alert.mjd - history - 1e-9) & (lc.mjd <= alert.mjd + 1e-9)
            assert alert.n_points == window.sum() and not alert.dropped
        last = mine[-1].lightcurve
        window = lc.mjd >= lc.mjd[-1] - history - 1e-9
        np.testing.assert_allclose(last.mjd, lc.mjd[window], rtol=0, atol=1e-6)
        np.testing.assert_allclose(last.mag, lc.mag[window], rtol=0, atol=2e-5)
        np.testing.assert_allclose(last.magerr, lc.magerr[window], rtol=1e-4)
        assert list(last.band) == [DEFAULT_BAND_MAP[str(b)] for b in lc.band[window]]


# --------------------------------------------------------------------------------------------- command


def run_command(argv: list[str]) -> int:
    import argparse

    from broker.offline.commands import replay as command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return command.main(parser.parse_args(argv))


def test_selection_by_object_ids():
    objects = [make_object(f"o{k}", [1.0]) for k in range(5)]
    chosen = select_objects(objects, Selection(object_ids=frozenset({"o1", "o3", "zz"})))
    assert [o.object_id for o in chosen] == ["o1", "o3"]


def test_the_command_writes_alerts_truth_summary_and_bad_rows(tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "a.csv").write_text("t,m,e,id\n1.0,15,0.1,A\n2.0,15.1,0.1,A\n3.0,x,0.1,A\n1.5,16,0.1,B\n")
    (tmp_path / "ids.csv").write_text("object_id,label\nA,EW\n")
    argv = [f"csv:{archive}", "--time-col", "t", "--mag-col", "m", "--err-col", "e", "--id-col", "id"]
    out = tmp_path / "run"
    common = ["--out", str(out), "--to-folder", "--as-fast-as-possible", "--no-progress", "--flavour", "lsst"]
    with pytest.raises(ArchiveError, match=r"a.csv, line 4: need numbers"):
        run_command([*argv, *common])
    assert run_command([*argv, *common, "--skip-bad-rows", "--objects", str(tmp_path / "ids.csv")]) == 0
    assert len(list((out / "alerts").iterdir())) == 2  # A's two good points; B not selected
    assert read_rows(out / "bad_rows.csv") == [
        {
            "file": str(archive / "a.csv"),
            "line": "4",
            "reason": "need numbers in ['t', 'm', 'e'], got '3.0', 'x', '0.1'",
        }
    ]
    summary = json.loads((out / "replay.json").read_text())
    assert summary["n_alerts"] == 2 and summary["bad_rows"] == 1 and summary["selection"]["object_ids"] == 1
    assert (out / "schemas").is_dir() and read_rows(out / "truth.csv")[0]["archive_id"] == "A"


def test_the_command_checks_its_flags(tmp_path):
    base = [f"asassn:{FIXTURES / 'asassn'}", "--out", str(tmp_path)]
    with pytest.raises(ConfigError, match="either --bootstrap and --topic, or --to-folder"):
        run_command(base)
    with pytest.raises(ConfigError, match="needs both --bootstrap and --topic"):
        run_command([*base, "--topic", "t"])
    with pytest.raises(ConfigError, match=r"--time-range must be MJD0:MJD1"):
        run_command([*base, "--to-folder", "--time-range", "5"])
    with pytest.raises(ConfigError, match=r"option\(s\) \['bands'\] apply to none"):
        run_command([*base, "--to-folder", "--bands", "I"])
    with pytest.raises(ConfigError, match="--band-map entries must be ARCHIVE=SURVEY"):
        run_command([*base, "--to-folder", "--as-fast-as-possible", "--band-map", "V:g"])


def test_a_real_time_replay_of_years_says_how_long_it_will_take(caplog) -> None:
    from broker.offline.replay import Pace, warn_if_slow

    with caplog.at_level("WARNING", logger="broker.offline.replay"):
        assert warn_if_slow(Pace.real_time(), 50000.0, 50000.01) == pytest.approx(864.0)  # a night: quiet
        assert caplog.records == []
        assert warn_if_slow(Pace.real_time(10.0), 50000.0, 51000.0) == pytest.approx(1000 * 86400 / 10)
    (record,) = caplog.records
    assert "1000.0 days" in record.getMessage() and "100.0 days of wall time" in record.getMessage()
    assert warn_if_slow(Pace.as_fast_as_possible(), 50000.0, 51000.0) == 0.0
