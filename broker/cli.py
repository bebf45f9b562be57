"""`varstream` command line: parses arguments and hands them to the command modules.

Each command lives in `broker.commands.<module>` (the plugin) or `broker.offline.commands.<module>` (the
offline tooling) and exposes `add_arguments(parser)` and `main(args) -> int`; this file only lists them.
Only the command being run is imported, so `varstream run` never loads the training stack; a command
that needs a package from an extra the install lacks says which extra, in one line.
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
    "publish": (
        "broker.offline.commands.publish",
        "publish real alert files (ZTF/LSST, folders, tarballs) onto a topic as the surveys did",
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
    "evaluate-surveys": (
        "broker.offline.commands.evaluate_surveys",
        "evaluate on every labelled archive in ../shared",
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
    "fit-novelty-head": (
        "broker.offline.commands.fit_novelty_head",
        "fit a classifier bundle's k-NN novelty head on its own training split (seconds)",
    ),
    "export-onnx": (
        "broker.offline.commands.export_onnx",
        "write the ONNX export of bundles (served by ONNX Runtime in the plugin)",
    ),
}

# top-level package -> the extra that installs it (pyproject.toml [project.optional-dependencies])
EXTRA_OF = {
    "torch": "train",
    "onnx": "train",
    "pandas": "train",
    "sklearn": "train",
    "matplotlib": "train",
    "tqdm": "train",
    "feets": "train",
    "threadpoolctl": "train",
}


class MissingExtra(Exception):
    """A command needs a package of an extra this install lacks; str() is the one-line instruction."""


def missing_extra(command: str, err: ModuleNotFoundError) -> MissingExtra | None:
    extra = EXTRA_OF.get((err.name or "").partition(".")[0])
    if extra is None:
        return None
    return MissingExtra(
        f"varstream {command} needs the [{extra}] extra ({err.name} is not installed): "
        f"pip install 'varstream[{extra}]'"
    )


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported, to add its arguments (None: none is)."""
    parser = argparse.ArgumentParser(
        prog="varstream",
        description="Classify periodic variable stars in ZTF/LSST alert streams (iTCN + AE-GMM over Kafka).",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if name != command:
            sub.add_parser(name, help=help_text, description=help_text)
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            raise missing_extra(name, err) or err from err
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip())
        module.add_arguments(p)
        p.set_defaults(_main=module.main)
    return parser


def command_in(argv: list[str]) -> str | None:
    """The command named on the command line (the first word that is not an option), if any."""
    word = next((word for word in argv if not word.startswith("-")), None)
    return word if word in COMMANDS else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = command_in(argv)
    try:
        parser = build_parser(command)
    except MissingExtra as exc:
        print(exc, file=sys.stderr)
        return 2
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
    except ModuleNotFoundError as err:
        hint = missing_extra(args.command, err)
        if hint is None:
            raise
        print(hint, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
