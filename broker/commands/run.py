"""Run the plugin: consume alerts, classify periodic variables, publish annotations.

Settings come from a TOML or YAML file (--config), then VARSTREAM_<SECTION>__<KEY> environment variables
(e.g. VARSTREAM_KAFKA__BOOTSTRAP_SERVERS=broker:9092), then the flags below; `--set section.key=value`
reaches any setting. `--print-config` shows the result and exits. SIGTERM or SIGINT: the batch in hand is
finished, delivered and committed, then the process exits 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys

log = logging.getLogger(__name__)

# flag -> (config key, type); flags are shortcuts for the most common settings.
FLAGS = {
    "bootstrap_servers": ("kafka.bootstrap_servers", str, "Kafka bootstrap servers, host:port[,host:port]"),
    "group_id": ("kafka.group_id", str, "consumer group; run more instances with the same id to scale out"),
    "input_topic": ("kafka.input_topics", str, "input topic (repeat for several)"),
    "output_topic": ("kafka.output_topic", str, "annotation topic"),
    "dead_letter_topic": ("kafka.dead_letter_topic", str, "dead-letter topic for bad messages"),
    "input_format": ("kafka.input_format", str, "auto | ztf | lsst"),
    "schema_registry_url": ("kafka.schema_registry_url", str, "Confluent Schema Registry for LSST alerts"),
    "schema_dir": ("kafka.schema_dirs", str, "folder of <id>.avsc schemas (repeat for several)"),
    "delivery": ("kafka.delivery", str, "at-least-once (default) | exactly-once"),
    "store": ("store.path", str, "light-curve store base path (one SQLite file per input partition)"),
    "classifier_bundle": ("inference.classifier_bundle", str, "classifier bundle (default: shipped iTCN)"),
    "novelty_bundle": ("inference.novelty_bundle", str, "novelty bundle (default: shipped AE-GMM; 'none')"),
    "device": ("inference.device", str, "auto | cpu | cuda | cuda:N"),
    "metrics_port": ("metrics.port", int, "port of /metrics, /healthz and /readyz (0: off)"),
    "summary": ("run.summary_path", str, "write the run's counts as JSON here at exit"),
    "idle_exit": ("run.idle_exit_s", float, "exit after this many seconds without messages"),
    "max_alerts": ("run.max_alerts", int, "exit after this many alerts"),
}
REPEATABLE = {"input_topic", "schema_dir"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", metavar="FILE", help="TOML or YAML config file")
    for name, (key, typ, help_text) in FLAGS.items():
        flag = "--" + name.replace("_", "-")
        if name in REPEATABLE:
            parser.add_argument(flag, action="append", type=typ, help=f"{help_text} [{key}]")
        else:
            parser.add_argument(flag, type=typ, help=f"{help_text} [{key}]")
    parser.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="any other setting"
    )
    parser.add_argument("--print-config", action="store_true", help="print the effective config and exit")


def overrides_from(args: argparse.Namespace) -> dict:
    from broker.config import parse_scalar
    from broker.errors import ConfigError

    overrides = {}
    for name, (key, _typ, _help) in FLAGS.items():
        value = getattr(args, name, None)
        if value is not None:
            overrides[key] = value
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"--set {item!r}: expected SECTION.KEY=VALUE")
        overrides[key.strip()] = parse_scalar(raw.strip())
    return overrides


def main(args: argparse.Namespace) -> int:
    from broker.config import load_config
    from broker.health import Health
    from broker.metrics import Metrics, serve
    from broker.pipeline import Pipeline

    config = load_config(args.config, overrides_from(args))
    if args.print_config:
        print(json.dumps(config.as_dict(), indent=2))
        return 0
    metrics = Metrics()
    health = Health(config.metrics.stall_after_s)
    if config.metrics.port:  # up before the models load, so /readyz can say "starting"
        serve(config.metrics.port, config.metrics.host, health=health)
    pipeline = Pipeline(config, metrics, health=health)

    def stop(signum, frame) -> None:
        log.warning("signal %d: finishing the batch in hand, then exiting", signum)
        pipeline.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    summary = pipeline.run().as_dict()
    print(
        json.dumps({k: summary[k] for k in ("alerts_in", "annotated", "skipped", "dead_lettered")}),
        file=sys.stderr,
    )
    return 0
