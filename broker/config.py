"""The plugin's configuration: typed sections, loaded from TOML or YAML, then env overrides, then flags.

Precedence (last wins): defaults < config file < `VARSTREAM_<SECTION>__<KEY>` environment variables <
command-line flags. Unknown sections or keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from broker.errors import ConfigError

ENV_PREFIX = "VARSTREAM_"
INPUT_FORMATS = ("auto", "ztf", "lsst")
DELIVERY_MODES = ("at-least-once", "exactly-once")
INFERENCE_ENGINES = ("auto", "onnx", "torch")
HISTORY_MODES = ("full", "lazy")
MAX_AUTO_PERIOD_THREADS = 8
RUN_MODES = ("full", "ceiling")  # ceiling: the bench's upper bound (decode and commit only)


@dataclass
class KafkaConfig:
    """Where alerts come from and where annotations go."""

    bootstrap_servers: str = "127.0.0.1:9092"
    group_id: str = "varstream"
    input_topics: list[str] = field(default_factory=lambda: ["alerts"])
    output_topic: str = "varstream-annotations"
    dead_letter_topic: str = "varstream-dead-letter"
    input_format: str = "auto"  # auto | ztf | lsst (auto: Avro container = ZTF, wire format = LSST)
    schema_registry_url: str = ""  # Confluent Schema Registry for LSST wire-format ids
    schema_dirs: list[str] = field(default_factory=list)  # local folders of <id>.avsc schemas
    batch_size: int = 500  # max alerts per consumed batch (= the micro-batch)
    batch_timeout_s: float = 0.1  # max wait to fill a batch (= the micro-batch max delay; see deploy/README)
    delivery: str = "at-least-once"  # or exactly-once (Kafka transactions)
    transactional_id: str = ""  # exactly-once only; default varstream-<group_id>-<hostname>
    connect_timeout_s: float = 15.0
    consumer_config: dict[str, Any] = field(default_factory=dict)  # extra librdkafka consumer settings
    producer_config: dict[str, Any] = field(default_factory=dict)  # extra librdkafka producer settings


@dataclass
class DecodeConfig:
    """How much of each alert is decoded (broker/history.py, broker/codecs/lazy.py)."""

    history: str = "lazy"  # lazy: the history only when needed (broker/history.py); full: every alert whole
    reconcile_every: int = 50  # lazy: read an object's history at least every this many alerts


@dataclass
class StoreConfig:
    """The per-object light-curve store: one SQLite file per input partition, backed by a changelog."""

    path: str = "varstream-lightcurves.sqlite"  # partition files: <stem>.<topic>.<partition>.sqlite beside it
    max_objects: int = 1_000_000  # per partition; least recently updated objects are evicted beyond this
    max_points_per_object: int = 2_000  # oldest points are dropped beyond this
    max_idle_days: float = 0.0  # evict objects without a detection for this long (0 = never)
    cache_objects: int = 10_000  # decoded objects kept in memory per partition (write-through LRU)
    changelog: bool = True  # mirror the store to a compacted changelog topic and restore from it
    changelog_topic: str = ""  # default <group_id>-lightcurves-changelog (<group_id>-<topic>-... if several)
    changelog_replication_factor: int = -1  # -1: the brokers' default.replication.factor
    restore_timeout_s: float = 120.0  # a restore that makes no progress this long fails


@dataclass
class TriggerConfig:
    """When an object deserves a (new) classification."""

    min_points: int = 50  # fewer points: skipped as too_few_points
    min_new_fraction: float = 0.1  # re-classify once the light curve grew by this fraction
    min_interval_days: float = 0.0  # and at least this much observing time since the last one
    max_false_alarm_probability: float = 0.1  # above it: skipped as non_periodic (1.0 disables)


@dataclass
class InferenceConfig:
    """The models and where they run."""

    classifier_bundle: str = ""  # empty: the default bundle shipped with varstream
    # empty: the classifier's k-NN head; "none": off; a path: an AE-GMM bundle, or another classifier
    # bundle whose k-NN head (and network) then scores novelty (models.head_novelty)
    novelty_bundle: str = ""
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    engine: str = "auto"  # auto | onnx | torch (torch needs the [train] extra); see broker.runtime
    max_batch_windows: int = 512  # windows per forward pass
    novelty_percentile: float = 95.0  # training-energy percentile above which an alert is novel
    torch_threads: int = 0  # 0: torch's default


@dataclass
class PeriodConfig:
    """Which engine computes the periodogram (the science comes from the classifier bundle)."""

    engine: str = "auto"  # auto | nifty-ls | astropy | astropy-fast | cuda (auto: cuda, else nifty-ls)
    # threads over a batch of light curves (nifty-ls releases the GIL): a count, or "auto" = the cores this
    # process may use (os.sched_getaffinity), at most MAX_AUTO_PERIOD_THREADS (default: measured +31% ZTF,
    # +46% LSST alerts/s on 2 idle cores; no loss with busy ones)
    threads: int | str = "auto"

    def thread_count(self) -> int:
        """`threads` resolved to a count."""
        if self.threads != "auto":
            return int(self.threads)
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # no affinity API (macOS)
            cores = os.cpu_count() or 1
        return max(1, min(cores, MAX_AUTO_PERIOD_THREADS))


@dataclass
class MetricsConfig:
    """The Prometheus endpoint."""

    host: str = "0.0.0.0"
    port: int = 9108  # 0 disables the endpoint
    stall_after_s: float = 120.0  # /healthz fails once the consumer loop has not moved for this long


@dataclass
class RunConfig:
    """How long a run lasts and what it leaves behind (for demos, replays and tests)."""

    summary_path: str = ""  # JSON of the run's counts, written at exit
    # exit cleanly after this long without messages, once the group has nothing unread (0 = run forever)
    idle_exit_s: float = 0.0
    max_alerts: int = 0  # exit cleanly after this many alerts (0 = no limit)
    # "ceiling" (benchmarks only): consume, decode and commit; nothing stored or classified, each decoded
    # alert skipped as ceiling_mode. The bench divides the plugin's rate by this one.
    mode: str = "full"


@dataclass
class Config:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    trigger: TriggerConfig = field(default_factory=TriggerConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    period: PeriodConfig = field(default_factory=PeriodConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def validate(self) -> Config:
        k, s, t, i = self.kafka, self.store, self.trigger, self.inference
        _check(
            k.input_format in INPUT_FORMATS, "kafka.input_format", k.input_format, f"one of {INPUT_FORMATS}"
        )
        _check(k.delivery in DELIVERY_MODES, "kafka.delivery", k.delivery, f"one of {DELIVERY_MODES}")
        _check(bool(k.input_topics), "kafka.input_topics", k.input_topics, "at least one topic")
        _check(k.batch_size > 0, "kafka.batch_size", k.batch_size, "> 0")
        _check(k.batch_timeout_s >= 0, "kafka.batch_timeout_s", k.batch_timeout_s, ">= 0")
        d = self.decode
        _check(d.history in HISTORY_MODES, "decode.history", d.history, f"one of {HISTORY_MODES}")
        _check(d.reconcile_every >= 1, "decode.reconcile_every", d.reconcile_every, ">= 1")
        _check(s.max_objects > 0, "store.max_objects", s.max_objects, "> 0")
        _check(s.max_points_per_object > 0, "store.max_points_per_object", s.max_points_per_object, "> 0")
        _check(s.cache_objects > 0, "store.cache_objects", s.cache_objects, "> 0")
        _check(s.restore_timeout_s > 0, "store.restore_timeout_s", s.restore_timeout_s, "> 0")
        _check(t.min_points >= 3, "trigger.min_points", t.min_points, ">= 3")
        _check(t.min_new_fraction >= 0, "trigger.min_new_fraction", t.min_new_fraction, ">= 0")
        _check(
            0 < t.max_false_alarm_probability <= 1,
            "trigger.max_false_alarm_probability",
            t.max_false_alarm_probability,
            "in (0, 1]",
        )
        _check(
            0 < i.novelty_percentile < 100,
            "inference.novelty_percentile",
            i.novelty_percentile,
            "in (0, 100)",
        )
        _check(i.max_batch_windows > 0, "inference.max_batch_windows", i.max_batch_windows, "> 0")
        _check(i.engine in INFERENCE_ENGINES, "inference.engine", i.engine, f"one of {INFERENCE_ENGINES}")
        _check(self.run.mode in RUN_MODES, "run.mode", self.run.mode, f"one of {RUN_MODES}")
        threads = self.period.threads
        _check(
            threads == "auto" or (isinstance(threads, int) and threads >= 1),
            "period.threads",
            threads,
            '"auto" or an integer >= 1',
        )
        _check_period_engine(self.period.engine)
        m = self.metrics
        _check(0 <= m.port < 65536, "metrics.port", m.port, "in [0, 65535]")
        _check(m.stall_after_s > 0, "metrics.stall_after_s", m.stall_after_s, "> 0")
        return self

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)


def _check(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key} = {value!r} is invalid: expected {expected}")


def _check_period_engine(name: str) -> None:
    """Unknown engines, and engines that cannot run here (cuda without CUDA), stop the start clearly."""
    from broker.period.engines import resolve_engine

    try:
        resolve_engine(name)
    except ConfigError as exc:
        raise ConfigError(f"period.engine = {name!r} is invalid: {exc}") from exc


def load_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    """Build the configuration: defaults, then the file, then `VARSTREAM_*` env vars, then `overrides`.

    `overrides` maps "section.key" to a value (what the CLI flags produce).
    """
    config = Config()
    if path:
        _apply_sections(config, _read_file(Path(path)), source=str(path))
    env = os.environ if environ is None else environ
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        _set(config, section, key, parse_scalar(raw), source=f"environment variable {name}")
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        _set(config, section, key, value, source=f"override {dotted}")
    return config.validate()


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as exc:  # the parsers' own messages carry line numbers
        raise ConfigError(f"config file {path} cannot be parsed: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold sections of key = value settings")
    return data


def _apply_sections(config: Config, data: dict[str, Any], source: str) -> None:
    for section, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: [{section}] must be a section of settings, got {values!r}")
        for key, value in values.items():
            _set(config, section, key, value, source=source)


def _set(config: Config, section: str, key: str, value: Any, source: str) -> None:
    sections = {f.name for f in dataclasses.fields(Config)}
    if section not in sections:
        raise ConfigError(f"{source}: unknown section [{section}]; valid sections: {sorted(sections)}")
    target = getattr(config, section)
    hints = get_type_hints(type(target))
    if key not in hints:
        raise ConfigError(f"{source}: unknown key {section}.{key}; valid keys: {sorted(hints)}")
    setattr(target, key, _coerce(value, hints[key], f"{section}.{key}", source))


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    """Convert to the field's type; strings from the environment are accepted for scalars and lists."""
    origin = get_origin(hint)
    try:
        if origin is types.UnionType and set(get_args(hint)) == {int, str}:  # a count or a keyword
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                return int(value)
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise TypeError("expected an integer or a keyword")
            return value
        if origin is list:
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            (item_type,) = get_args(hint)
            return [item_type(v) for v in value]
        if origin is dict:
            if not isinstance(value, dict):
                raise TypeError("expected a table of settings")
            return dict(value)
        if hint is bool:
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if hint is int and isinstance(value, float) and not value.is_integer():
            raise TypeError("expected an integer")
        return hint(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{source}: {key} = {value!r} is not a valid {getattr(hint, '__name__', hint)}: {exc}"
        ) from exc


def parse_scalar(raw: str) -> Any:
    """Environment values are TOML literals when they parse as one (numbers, booleans), else strings."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw
