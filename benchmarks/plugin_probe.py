"""`varstream run` as a separate process, watched from outside: its RSS and its Prometheus stage metrics.

The bench reads the plugin only through what an operator sees: the run summary it writes at exit, the
/metrics endpoint (varstream_stage_latency_seconds sum/count per stage) and the process's resident memory.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from prometheus_client.parser import text_string_to_metric_families

from broker.offline.demo import start_plugin, wait_until_consuming

# The stages of issue 12's table, in pipeline order; a stage the plugin does not time separately is None
# (today "trigger" is timed inside "store").
STAGE_ORDER = ("consume", "decode", "store", "trigger", "period", "fold", "infer", "produce", "commit")
STAGE_METRIC = "varstream_stage_latency_seconds"
SAMPLE_EVERY_S = 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_store(path: Path) -> Path:
    """`path` with no store left behind: the file and its partition files (`<stem>.<topic>.<p>.sqlite*`)."""
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    for old in [path, *path.parent.glob(f"{stem}.*.sqlite*")]:
        old.unlink(missing_ok=True)
    return path


def plugin_config(
    path: Path,
    bootstrap: str,
    topic: str,
    group: str,
    metrics_port: int,
    *,
    mode: str = "full",
    schema_dir: Path | None = None,
    idle_exit_s: float = 5.0,
    store: Path | None = None,
    settings: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """A config with the shipped defaults (trigger, bundles, batch size) except topics, store and exit.

    store: an existing store to continue from; None: a fresh one next to the config.
    settings: {section: {key: value}} set on top (a variant of the defaults, see `parse_setting`)."""
    if store is None:
        store = fresh_store(path.with_suffix(".sqlite"))
    sections: dict[str, dict[str, Any]] = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "group_id": group,
            "input_topics": [topic],
            "output_topic": f"{topic}-out",
            "dead_letter_topic": f"{topic}-dlq",
        }
        | ({"schema_dirs": [str(schema_dir)]} if schema_dir else {}),
        "store": {"path": str(store)},
        "metrics": {"host": "127.0.0.1", "port": metrics_port},
        "run": {
            "mode": mode,
            "idle_exit_s": idle_exit_s,
            "summary_path": str(path.with_suffix(".summary.json")),
        },
    }
    for section, values in (settings or {}).items():
        sections.setdefault(section, {}).update(values)
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]  # JSON scalars/lists: TOML
    path.write_text("\n".join(lines) + "\n")
    return path


def parse_setting(text: str) -> dict[str, dict[str, Any]]:
    """ "kafka.batch_timeout_s=0.1,period.threads=2" -> {"kafka": {"batch_timeout_s": 0.1}, "period": ...}.

    Values are read as JSON where they parse (numbers, true/false, quoted strings), else as strings."""
    out: dict[str, dict[str, Any]] = {}
    for item in text.split(","):
        name, sep, raw = item.partition("=")
        section, dot, key = name.strip().partition(".")
        if not sep or not dot or not section or not key:
            raise ValueError(f"a setting is section.key=value, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw.strip()
        out.setdefault(section, {})[key] = value
    return out


def setting_label(settings: dict[str, dict[str, Any]]) -> str:
    return ",".join(f"{s}.{k}={v}" for s, values in settings.items() for k, v in values.items())


@dataclass
class Probe:
    """Samples a process's RSS and its /metrics every SAMPLE_EVERY_S seconds in a thread."""

    pid: int
    metrics_url: str
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, MB)
    stages: dict[str, tuple[float, float]] = field(default_factory=dict)  # stage -> (sum s, count)
    consumed: float = 0.0
    scrapes: int = 0
    scrape_error: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Probe:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._started = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        process = psutil.Process(self.pid)
        while not self._stop.is_set():
            try:
                self.rss_mb.append((time.monotonic() - self._started, process.memory_info().rss / 2**20))
            except psutil.Error:
                return  # exited
            self._scrape()
            self._stop.wait(SAMPLE_EVERY_S)

    def _scrape(self) -> None:
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=2) as response:
                text = response.read().decode()
        except OSError as exc:
            self.scrape_error = repr(exc)
            return  # not up yet, or gone: the last good scrape stands
        self.scrapes += 1
        sums, counts = {}, {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == STAGE_METRIC + "_sum":
                    sums[sample.labels["stage"]] = sample.value
                elif sample.name == STAGE_METRIC + "_count":
                    counts[sample.labels["stage"]] = sample.value
                elif sample.name == "varstream_alerts_consumed_total":
                    self.consumed = sample.value
        if sum(counts.values()) >= sum(c for _, c in self.stages.values()):  # counters only grow
            self.stages = {s: (sums[s], counts.get(s, 0.0)) for s in sums}

    def memory(self, after_s: float = 0.0) -> dict:
        """start (first sample after `after_s`), end and max RSS [MB] and the samples' slope [MB/min]."""
        samples = [(t, mb) for t, mb in self.rss_mb if t >= after_s] or self.rss_mb
        if not samples:
            return {}
        t, mb = np.array(samples).T
        slope = float(np.polyfit(t, mb, 1)[0] * 60) if len(t) > 2 and np.ptp(t) > 0 else 0.0
        minutes = [float(mb[np.searchsorted(t, t[0] + 60 * m)]) for m in range(int((t[-1] - t[0]) // 60) + 1)]
        return {
            "rss_by_minute_mb": minutes,  # RSS at each whole minute after the start sample
            "rss_start_mb": float(mb[0]),
            "rss_end_mb": float(mb[-1]),
            "rss_max_mb": float(mb.max()),
            "rss_slope_mb_per_min": slope,
            "samples": len(mb),
        }


def stage_table(stages: dict[str, tuple[float, float]], alerts: int, busy_s: float) -> list[dict]:
    """One row per stage of STAGE_ORDER: total seconds, batches, ms per alert, share of busy time; then
    "other": busy time no stage accounts for (the loop between stages, accounting, idle polls)."""
    rows = []
    for stage in STAGE_ORDER:
        if stage not in stages:
            rows.append(
                {"stage": stage, "seconds": None, "batches": None, "ms_per_alert": None, "share": None}
            )
            continue
        seconds, batches = stages[stage]
        rows.append(
            {
                "stage": stage,
                "seconds": seconds,
                "batches": int(batches),
                "ms_per_alert": 1e3 * seconds / alerts if alerts else None,
                "share": seconds / busy_s if busy_s > 0 else None,
            }
        )
    timed = sum(r["seconds"] or 0.0 for r in rows)
    other = max(0.0, busy_s - timed)
    rows.append(
        {
            "stage": "other",
            "seconds": other,
            "batches": None,
            "ms_per_alert": 1e3 * other / alerts if alerts else None,
            "share": other / busy_s if busy_s > 0 else None,
        }
    )
    return rows


def bound_by(rows: list[dict]) -> dict | None:
    """The stage row with the most time: what bounds the run (consume: waiting for alerts)."""
    timed = [r for r in rows if r["seconds"]]
    return max(timed, key=lambda r: r["seconds"]) if timed else None


@dataclass
class PluginRun:
    """One plugin process on one topic: start, wait until it consumes, then until it exits idle."""

    config_path: Path
    bootstrap: str
    group: str
    metrics_port: int

    def start(self) -> PluginRun:
        self.process = start_plugin(self.config_path, self.config_path.with_suffix(".log"))
        self.probe = Probe(self.process.pid, f"http://127.0.0.1:{self.metrics_port}/metrics").start()
        wait_until_consuming(self.bootstrap, self.group, self.process)
        self.consuming_after_s = time.monotonic() - self.probe._started
        return self

    def finish(self, timeout_s: float = 1800) -> dict:
        """Wait for the exit; the run summary with the stage table and memory added."""
        try:
            code = self.process.wait(timeout_s)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self.probe.stop()
        log = self.config_path.with_suffix(".log")
        if code != 0:
            raise RuntimeError(f"plugin exited {code}: {log.read_text(errors='replace')[-2000:]}")
        summary = json.loads(self.config_path.with_suffix(".summary.json").read_text())
        lat = np.asarray(summary.pop("latencies_s"))
        busy = summary["busy_seconds"]
        return {
            "alerts": summary["alerts_in"],
            "annotated": summary["annotated"],
            "skipped": summary["skipped"],
            "dead_lettered": summary["dead_lettered"],
            "accounting_holds": summary["accounting_holds"],
            "busy_s": busy,
            "batches": summary["batches"],
            "history_decisions": summary.get("history_decisions", {}),
            "alerts_per_s": summary["throughput_alerts_per_s"],
            "latency_p50_s": float(np.percentile(lat, 50)) if len(lat) else None,
            "latency_p99_s": float(np.percentile(lat, 99)) if len(lat) else None,
            "latency_max_s": float(lat.max()) if len(lat) else None,
            "latencies_annotated": len(lat),
            "stages": stage_table(self.probe.stages, summary["alerts_in"], busy),
            "memory": self.probe.memory(after_s=self.consuming_after_s),
            "metrics_scrapes": self.probe.scrapes,
        }
