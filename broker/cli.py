"""`varstream` command line: parses arguments and hands them to the command modules.

Each command lives in `broker.commands.<module>` (the plugin) or `broker.offline.commands.<module>` (the
offline tooling) and exposes `add_arguments(parser)` and `main(args) -> int`; this file only lists them,
so it holds no logic of its own.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from broker.errors import VarstreamError

# name -> (module, one-line help). Order is the order of `varstream --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("broker.commands.run", "run the plugin: alerts in, annotations out"),
    "demo": ("broker.offline.commands.demo", "the whole stream on a local Kafka with the default models"),
    "replay": (
        "broker.offline.commands.replay",
        "replay survey archives as a ZTF-like or LSST-like alert stream",
    ),
    "evaluate-stream": (
        "broker.offline.commands.evaluate_stream",
        "score a running plugin from its annotations",
    ),
    "train-pelsvae": (
        "broker.offline.commands.train_pelsvae",
        "train/evaluate the PELS-VAE light-curve generator",
    ),
    "generate": (
        "broker.offline.commands.generate",
        "synthetic light curves from the PELS-VAE (CSV or CRTS files)",
    ),
    "train": (
        "broker.offline.commands.train",
        "train a classifier (iTCN/TCN/iResNet) or novelty (AE-GMM) bundle",
    ),
    "evaluate": (
        "broker.offline.commands.evaluate",
        "score bundles on a labelled archive (metrics.json + PNGs)",
    ),
    "periods": (
        "broker.offline.commands.periods",
        "the plugin's period search on an archive (periods.csv, summary.json, plots)",
    ),
    "compare-models": (
        "broker.offline.commands.compare_models",
        "iTCN vs TCN vs iResNet vs random forest on CRTS",
    ),
    "report": (
        "broker.offline.commands.report",
        "plot a run: latency, throughput, class mix, novelty (PNG + JSON)",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="varstream",
        description="Classify periodic variable stars in ZTF/LSST alert streams (iTCN + AE-GMM over Kafka).",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip())
        module.add_arguments(p)
        p.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_main", None):
        parser.print_help()
        return 2
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args._main(args) or 0)
    except VarstreamError as exc:
        print(f"varstream {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
