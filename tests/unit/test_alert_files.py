"""Real alert files back into messages (broker.offline.alert_files): bytes unchanged, keyed, ordered."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import fastavro
import pytest

from broker.codecs import SchemaResolver, decode, official_schema_id
from broker.codecs.resolver import wire_header
from broker.errors import ConfigError
from broker.offline.alert_files import ReadLog, read_alerts, split_file
from tests.fixtures.alert_samples import SAMPLES, all_messages, ztf_messages


@pytest.fixture(scope="module")
def samples() -> dict[str, bytes]:
    return all_messages()


def write_files(folder: Path, messages: dict[str, bytes]) -> Path:
    """Each message as its own file, as a broker archives them (LSST wire format as .bin)."""
    for name, value in messages.items():
        path = folder / Path(name).with_suffix(".avro" if value[:4] == b"Obj\x01" else ".bin")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(value)
    return folder


def test_every_real_sample_goes_out_byte_for_byte_keyed_by_its_object(tmp_path, samples) -> None:
    folder = write_files(tmp_path / "alerts", samples)
    (folder / "README.txt").write_text("not an alert")
    log = ReadLog()
    sent = list(read_alerts(folder, "time", log=log))
    assert log.files == len(samples) + 1 and log.alerts == len(sent) == len(samples)
    assert [u.reason[:30] for u in log.unreadable] == ["neither an Avro container nor "]
    assert sorted(m.value for m in sent) == sorted(samples.values())  # nothing rewritten
    for m in sent:
        alert = _alert_or_none(m.value)
        if alert is not None:  # usable alerts: the key is the object the plugin will report
            assert m.key == alert.object_id and m.mjd == pytest.approx(alert.mjd)
    assert [m.mjd for m in sent] == sorted(m.mjd for m in sent)
    assert {m.survey for m in sent} == {"ztf", "lsst"}


def _alert_or_none(value: bytes):
    try:
        return decode(value)
    except Exception:  # a valid alert with nothing usable (skipped by the plugin) has no Alert
        return None


def test_a_tarball_is_sent_as_stored_or_by_time(tmp_path) -> None:
    messages = ztf_messages()
    tarball = tmp_path / "ztf_public_20190110.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name, value in reversed(messages.items()):  # not in time order
            info = tarfile.TarInfo(Path(name).name)
            info.size = len(value)
            tar.addfile(info, io.BytesIO(value))
    stored = list(read_alerts(tarball, "archive"))
    assert [m.value for m in stored] == list(reversed(messages.values()))
    by_time = list(read_alerts(tarball, "time"))
    assert [m.mjd for m in by_time] == sorted(m.mjd for m in stored)
    with pytest.raises(ConfigError, match="--order archive"):
        list(read_alerts(tarball, "time", max_held_bytes=1000))


def test_a_multi_alert_container_becomes_one_alert_containers(tmp_path) -> None:
    path = SAMPLES / "ztf_official" / "2019_01_10_739260766315010006.avro"
    with open(path, "rb") as handle:
        reader = fastavro.reader(handle)
        schema, (record,) = reader.writer_schema, list(reader)
    records = []
    for k, shift in enumerate((2.0, 0.0, 1.0)):
        candidate = dict(record["candidate"], jd=record["candidate"]["jd"] + shift)
        records.append(dict(record, objectId=f"ZTF19test{k}", candidate=candidate))
    batch = io.BytesIO()
    fastavro.writer(batch, schema, records, codec="deflate")
    (tmp_path / "batch.avro").write_bytes(batch.getvalue())

    sent = list(read_alerts(tmp_path, "time"))
    assert [m.key for m in sent] == ["ZTF19test1", "ZTF19test2", "ZTF19test0"]
    for m in sent:
        alert = decode(m.value)  # a one-alert container, as ZTF publishes
        assert alert.object_id == m.key and alert.mjd == pytest.approx(m.mjd)
    assert [s.source.rsplit("#", 1)[1] for s in sent] == ["1", "2", "0"]


def test_wire_format_needs_a_schema_it_can_resolve(tmp_path, samples) -> None:
    value = next(v for v in samples.values() if v[:1] == b"\x00")
    (m,) = split_file("a.bin", value, SchemaResolver())
    assert m.survey == "lsst" and m.value == value
    unknown = wire_header(official_schema_id(77, 0)) + value[5:]
    with pytest.raises(ValueError, match="unknown_schema"):
        split_file("b.bin", unknown, SchemaResolver())


def test_records_that_are_not_alerts_are_listed_not_sent(tmp_path) -> None:
    schema = {"type": "record", "name": "Other", "fields": [{"name": "x", "type": "int"}]}
    other = io.BytesIO()
    fastavro.writer(other, schema, [{"x": 1}])
    (tmp_path / "other.avro").write_bytes(other.getvalue())
    (tmp_path / "cut.avro").write_bytes(ztf_messages()[next(iter(ztf_messages()))][:300])
    log = ReadLog()
    assert list(read_alerts(tmp_path, "archive", log=log)) == []
    reasons = {Path(u.source).name: u.reason for u in log.unreadable}
    assert reasons["other.avro"].startswith("neither a ZTF alert")
    assert reasons["cut.avro"].startswith("unreadable Avro container")


def test_a_missing_path_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        list(read_alerts(tmp_path / "nope", "time"))


def test_several_paths_share_one_time_order(tmp_path) -> None:
    messages = list(ztf_messages().items())
    for k, (name, value) in enumerate(messages):  # alternate the files between two folders
        folder = tmp_path / ("a" if k % 2 else "b")
        folder.mkdir(exist_ok=True)
        (folder / Path(name).name).write_bytes(value)
    spans = []
    sent = list(read_alerts([tmp_path / "a", tmp_path / "b"], "time", on_sorted=lambda *s: spans.append(s)))
    assert len(sent) == len(messages)
    assert spans == [(sent[0].mjd, sent[-1].mjd)]  # told before the first alert, for the pace warning
    assert [m.mjd for m in sent] == sorted(m.mjd for m in sent)
    stored = list(read_alerts([tmp_path / "a", tmp_path / "b"], "archive"))
    assert [Path(m.source).parent.name for m in stored] == sorted(Path(m.source).parent.name for m in stored)
