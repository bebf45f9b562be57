"""`varstream publish`: real alert files (a folder and a nightly-style tarball) onto a real Kafka topic,
byte for byte and keyed by object, then through the real plugin: every one is a valid alert."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.fixtures.alert_samples import all_messages, ztf_messages
from tests.fixtures.prometheus import REPO
from tests.integration.plugin import committed_lag, read_topic, write_config

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_published_real_alerts_reach_the_plugin_unchanged(kafka, new_topic, tmp_path) -> None:
    samples = all_messages()
    ztf = ztf_messages()
    folder = tmp_path / "archive"
    for name, value in samples.items():
        if name in ztf:
            continue  # the ZTF alerts go in the tarball below
        path = folder / Path(name).with_suffix(".avro" if value[:4] == b"Obj\x01" else ".bin")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(value)
    (folder / "notes.txt").write_text("an archive's README is not an alert")
    tarball = tmp_path / "ztf_public_night.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name, value in ztf.items():
            info = tarfile.TarInfo(Path(name).name)
            info.size = len(value)
            tar.addfile(info, io.BytesIO(value))

    src, out, dlq = new_topic(), new_topic(), new_topic()
    run_dir = tmp_path / "publish"
    result = subprocess.run(
        [sys.executable, "-m", "broker", "publish", str(folder), str(tarball), "--out", str(run_dir),
         "--bootstrap", kafka.bootstrap_servers, "--topic", src, "--as-fast-as-possible"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((run_dir / "publish.json").read_text())
    assert report["alerts_sent"] == len(samples) and report["unreadable_files"] == 1
    assert report["by_survey"]["ztf"] == len(ztf)
    assert "notes.txt" in (run_dir / "unreadable.csv").read_text()

    on_topic = read_topic(kafka.bootstrap_servers, src)
    assert sorted(m.value() for m in on_topic) == sorted(samples.values())  # byte for byte
    ztf_keys = {m.key().decode() for m in on_topic if m.value() in set(ztf.values())}
    assert all(key.startswith("ZTF") for key in ztf_keys)

    run = write_config(
        tmp_path / "p.toml", kafka.bootstrap_servers, src, out, dlq, "g-publish", tmp_path / "store.sqlite"
    )
    assert run.start().wait(timeout=120) == 0, run.log_tail()
    summary = run.summary()
    assert summary["alerts_in"] == len(samples) and summary["accounting_holds"], summary
    assert summary["dead_lettered"] == 0  # real alerts, published as the surveys did: none is bad input
    assert summary["annotated"] == 1  # the DP0.2 object, as in test_real_alert_samples
    assert committed_lag(kafka.bootstrap_servers, "g-publish", src) == 0
