"""Helpers for tests that run the plugin as a separate process against the real Kafka."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from broker.codecs import decode_annotation

REPO = Path(__file__).resolve().parents[2]

# The oracle below assumes these trigger settings.
MIN_POINTS = 50
MIN_NEW_FRACTION = 0.1


def expected_trigger_indices(n_points: int) -> list[int]:
    """Detection indices (0-based) at which an object with n_points alerts is classified.

    Written out independently of broker.trigger: first at MIN_POINTS points, then whenever the light curve
    has grown by MIN_NEW_FRACTION since the last classification.
    """
    out, last = [], 0
    for n in range(1, n_points + 1):
        if n >= MIN_POINTS and (last == 0 or (n - last) >= MIN_NEW_FRACTION * last - 1e-9):
            out.append(n - 1)
            last = n
    return out


@dataclass
class PluginRun:
    config_path: Path
    summary_path: Path
    process: subprocess.Popen | None = None

    def start(self, python: str | None = None) -> PluginRun:
        """Run the plugin from this checkout, or with `python`: another environment's installed varstream."""
        self.summary_path.unlink(missing_ok=True)
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        if python is not None:
            env.pop("PYTHONPATH")
        log = open(self.config_path.with_suffix(".log"), "ab")  # noqa: SIM115 (lives as long as the process)
        self.process = subprocess.Popen(
            [python or sys.executable, "-m", "broker", "-v", "run", "--config", str(self.config_path)],
            cwd=REPO if python is None else self.config_path.parent,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    def wait(self, timeout: float = 300) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"plugin did not finish in {timeout} s; log:\n{self.log_tail()}") from None

    def summary(self) -> dict:
        assert self.summary_path.exists(), f"no run summary; log:\n{self.log_tail()}"
        return json.loads(self.summary_path.read_text())

    def log_tail(self, n: int = 4000) -> str:
        path = self.config_path.with_suffix(".log")
        return path.read_text(errors="replace")[-n:] if path.exists() else ""


def write_config(
    path: Path,
    bootstrap: str,
    input_topic: str,
    output_topic: str,
    dlq_topic: str,
    group: str,
    store: Path,
    *,
    idle_exit_s: float = 4.0,
    batch_size: int = 200,
    kafka_extra: str = "",
    metrics_port: int = 0,
) -> PluginRun:
    path.write_text(f"""
[kafka]
bootstrap_servers = "{bootstrap}"
group_id = "{group}"
input_topics = ["{input_topic}"]
output_topic = "{output_topic}"
dead_letter_topic = "{dlq_topic}"
batch_size = {batch_size}
batch_timeout_s = 0.3
{kafka_extra}
[store]
path = "{store}"
[trigger]
min_points = {MIN_POINTS}
min_new_fraction = {MIN_NEW_FRACTION}
max_false_alarm_probability = 1.0
[inference]
device = "cpu"
[metrics]
port = {metrics_port}
host = "127.0.0.1"
[run]
idle_exit_s = {idle_exit_s}
summary_path = "{path.with_suffix(".summary.json")}"
""")
    return PluginRun(path, path.with_suffix(".summary.json"))


def read_topic(bootstrap: str, topic: str, timeout: float = 30) -> list:
    """Every message of a (single-partition) topic from the start to its current end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.time_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, lo)])
        out, deadline = [], time.time() + timeout
        while (not out or out[-1].offset() < hi - 1) and hi > lo and time.time() < deadline:
            for m in consumer.consume(500, 0.5):
                if m.error() is None:
                    out.append(m)
        return out
    finally:
        consumer.close()


def wait_for_records(run: PluginRun, bootstrap: str, topic: str, at_least: int, timeout: float = 120) -> None:
    """Block until `topic` holds at least `at_least` committed records, failing if the plugin dies first."""
    deadline = time.time() + timeout
    while len(read_topic(bootstrap, topic, timeout=1)) < at_least:
        assert time.time() < deadline and run.process.poll() is None, run.log_tail()
        time.sleep(0.2)


def sigkill_after_records(run: PluginRun, bootstrap: str, topic: str, at_least: int) -> None:
    """SIGKILL the (started) plugin once `topic` holds `at_least` committed records, and reap it."""
    wait_for_records(run, bootstrap, topic, at_least)
    run.process.send_signal(signal.SIGKILL)
    run.process.wait(30)


def read_annotations(bootstrap: str, topic: str) -> list[dict]:
    records = []
    for m in read_topic(bootstrap, topic):
        record = decode_annotation(m.value())  # validates against schemas/annotation.avsc
        assert m.key().decode() == record["objectId"]
        records.append(record)
    return records


def committed_lag(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        (tp,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        _lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return hi - max(tp.offset, 0)
    finally:
        consumer.close()
