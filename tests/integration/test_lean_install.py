"""The plugin installed alone (no extras) from the lock into a fresh virtual environment serves a real stream.

This is what the container holds (deploy/Dockerfile installs the same way). The environment has nothing of
the [train] extra, so the plugin there serves its models through ONNX Runtime. Alerts of real CRTS curves
are replayed into the real Kafka from this test process; the plugin runs from the fresh environment.
pip's cache makes the install quick after the first run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from broker.kafka_io import KafkaSink
from broker.offline.replay import Selection, replay
from tests.fixtures.crts_head import first_crts_objects
from tests.fixtures.prometheus import free_port
from tests.integration.plugin import (
    REPO,
    committed_lag,
    expected_trigger_indices,
    read_annotations,
    write_config,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PLUGIN_SOURCES = ("pyproject.toml", "requirements.lock", "README.md", "broker", "models", "schemas")
TRAIN_ONLY = ("torch", "pandas", "matplotlib", "sklearn", "feets", "onnx", "tqdm")
N_OBJECTS, N_POINTS = 20, 60


@pytest.fixture(scope="module")
def plugin_python(tmp_path_factory) -> Path:
    """python of a fresh venv holding `pip install -c requirements.lock .` of a copy of this checkout."""
    root = tmp_path_factory.mktemp("lean")
    source = root / "src"
    for name in PLUGIN_SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(path, source / name)
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=120)
    python = root / "venv" / "bin" / "python"
    install = [
        str(python),
        "-m",
        "pip",
        "install",
        "-q",
        "-c",
        str(source / "requirements.lock"),
        str(source),
    ]
    done = subprocess.run(install, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-4000:]
    return python


def in_venv(python: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), *args], capture_output=True, text=True, timeout=120, cwd=python.parent, env={}
    )


def test_the_plugin_install_has_nothing_from_the_train_extra(plugin_python) -> None:
    code = f"import importlib.util as u; print([m for m in {TRAIN_ONLY!r} if u.find_spec(m)])"
    assert in_venv(plugin_python, "-c", code).stdout.strip() == "[]"
    assert in_venv(plugin_python, "-c", "import onnxruntime, confluent_kafka, nifty_ls").returncode == 0
    train = in_venv(plugin_python, "-m", "broker", "train", "--data", "crts:/nowhere", "--out", "/tmp/x")
    assert train.returncode == 2
    assert "varstream train needs the [train] extra" in train.stderr
    assert "pip install 'varstream[train]'" in train.stderr


def test_the_lean_plugin_answers_a_real_stream_through_kafka(
    plugin_python, kafka, new_topic, shared_data, tmp_path
) -> None:
    objects = first_crts_objects(shared_data, N_OBJECTS, min_points=N_POINTS)
    src, out, dlq = new_topic(), new_topic(), new_topic()
    sink = KafkaSink(kafka.bootstrap_servers, src)
    try:
        stats = replay(objects, sink, "ztf", selection=Selection(max_points=N_POINTS), run_dir=tmp_path)
    finally:
        sink.close()
    port = free_port()
    run = write_config(
        tmp_path / "lean.toml",
        kafka.bootstrap_servers,
        src,
        out,
        dlq,
        "g-lean",
        tmp_path / "store.sqlite",
        metrics_port=port,
    )
    started = time.monotonic()
    run.start(python=str(plugin_python))
    ready_after = None
    while ready_after is None and run.process.poll() is None and time.monotonic() - started < 120:
        try:
            if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                ready_after = time.monotonic() - started
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    assert ready_after is not None, run.log_tail()
    print(f"lean plugin: process start to /readyz 200 in {ready_after:.2f} s")
    assert run.wait() == 0, run.log_tail()
    assert "with the onnx engine" in run.log_tail(200_000)

    summary = run.summary()
    assert summary["alerts_in"] == stats.n_alerts == N_OBJECTS * N_POINTS
    assert summary["annotated"] + sum(summary["skipped"].values()) == summary["alerts_in"]
    assert summary["dead_lettered"] == 0
    records = read_annotations(kafka.bootstrap_servers, out)
    expected = {(o.object_id, i + 1) for o in objects for i in expected_trigger_indices(N_POINTS)}
    assert {(r["objectId"], r["n_points"]) for r in records} == expected
    assert len({r["alertId"] for r in records}) == len(records) == summary["annotated"]
    # the name crts-itcn gives its head (models.novelty_head: "<bundle>-knn<k>...")
    shipped = json.loads((REPO / "models/bundles/crts-itcn/metadata.json").read_text())
    head_name = shipped["novelty_head"]["name"]
    for r in records:
        # the shipped classifier classifies; novelty from crts-itcn's network and k-NN head
        # (models.head_novelty), no AE-GMM loaded
        assert r["model_name"] == "crts-itcn-supcon" and r["novelty_model_name"] == head_name
        assert r["novelty_percentile"] is not None and r["windows_used"] >= 1
    assert committed_lag(kafka.bootstrap_servers, "g-lean", src) == 0
