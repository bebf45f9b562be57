"""Evaluate one bundle on every labelled archive in ../shared/data: surveys.json + surveys.md (a row each).

Runs `varstream evaluate` once per survey (broker.offline.surveys: crts --split test, eros b+r with the true
periods, ogle I+V by mode with the F-mode catalogue periods, the 15 MACHO curves) into OUT/<survey>/
(--test-split: the surveys the bundle was trained on, scored on their by-object test split only), then
collects class-level and superclass-level accuracy / balanced accuracy, novelty ROC AUC / p95 recall /
known objects flagged, and period recovery (within 1%, x2, x0.5) into one table. A survey that fails is
reported with its error and the others still run; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from broker.errors import ConfigError
from broker.offline.commands import evaluate

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", type=Path, help="classifier bundle (default: the shipped one)")
    parser.add_argument("--novelty-bundle", help="novelty bundle; 'none' for none (default: the shipped one)")
    parser.add_argument("--out", required=True, type=Path, help="report folder (one subfolder per survey)")
    parser.add_argument("--data-root", type=Path, help="labelled data folder (default: ../shared/data)")
    parser.add_argument("--surveys", help="comma-separated subset of crts,eros,ogle,macho (default: all)")
    parser.add_argument(
        "--test-split",
        help="comma-separated surveys scored on their by-object test split only (default: those the "
        "bundle's metadata says it trained on, e.g. crts,eros for crts-eros-itcn-supcon); 'none' for none",
    )
    parser.add_argument("--max-points", type=int, help="use only each object's first N points")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--cache-dir", type=Path, help="window cache folder (default: <repo>/.cache/windows)")


def evaluate_argv(survey, args: argparse.Namespace) -> list[str]:
    """The `varstream evaluate` arguments of one survey."""
    argv = ["--data", survey.data, "--out", str(args.out / survey.name), "--split", survey.split]
    argv += ["--device", args.device, "--threads", str(args.threads), "--no-progress", *survey.flags]
    optional = {
        "--bundle": args.bundle,
        "--novelty-bundle": args.novelty_bundle,
        "--max-points": args.max_points,
        "--cache-dir": args.cache_dir,
    }
    for flag, value in optional.items():
        if value is not None:
            argv += [flag, str(value)]
    return argv


def trained_surveys(bundle: Path | None, surveys: set[str]) -> set[str]:
    """Those of `surveys` whose archive format the bundle's metadata records it trained on: scored on
    their test split, since the bundle has seen the rest of them."""
    from models.bundle import DEFAULT_CLASSIFIER_BUNDLE

    path = Path(bundle or DEFAULT_CLASSIFIER_BUNDLE) / "metadata.json"
    if not path.is_file():
        raise ConfigError(f"{path.parent}: no metadata.json; name the trained surveys with --test-split")
    data = json.loads(path.read_text()).get("metadata", {}).get("data", {})
    formats = {a.get("format") for a in data.get("archives", [])}
    return (formats or set(str(data.get("format", "")).split("+"))) & surveys


def main(args: argparse.Namespace) -> int:
    from broker.offline.surveys import (
        SURVEY_NAMES,
        default_data_root,
        markdown_table,
        shared_surveys,
        summary_row,
    )

    data_root = args.data_root or default_data_root()
    names = [n.strip() for n in args.surveys.split(",")] if args.surveys else None
    args.out.mkdir(parents=True, exist_ok=True)
    surveys = shared_surveys(data_root, args.out / "inputs", names)
    if args.test_split is None:
        test_split = trained_surveys(args.bundle, set(SURVEY_NAMES))
        print(f"scored on their test split only (trained on): {', '.join(sorted(test_split)) or 'none'}")
    else:
        test_split = {n.strip() for n in args.test_split.split(",")} - {"none", ""}
    unknown = sorted(test_split - set(SURVEY_NAMES))
    if unknown:
        raise ConfigError(f"--test-split names unknown survey(s) {unknown}")
    for survey in surveys:
        survey.split = "test" if survey.name in test_split else "all"
    rows, failed = [], False
    for survey in surveys:
        parser = argparse.ArgumentParser(prog=f"evaluate {survey.name}")
        evaluate.add_arguments(parser)
        start = time.perf_counter()
        print(f"== {survey.name}: {survey.data} {' '.join(survey.flags)}")
        try:
            if survey.prepare is not None:
                survey.note += "; " + survey.prepare()
            evaluate.main(parser.parse_args(evaluate_argv(survey, args)))
            metrics = json.loads((args.out / survey.name / "metrics.json").read_text())
            row = summary_row(survey, metrics)
        except Exception as err:  # one survey's failure is reported; the others still run
            log.exception("survey %s failed", survey.name)
            failed = True
            row = {"survey": survey.name, "data": survey.data, "error": f"{type(err).__name__}: {err}"}
        row["seconds"] = round(time.perf_counter() - start, 1)
        rows.append(row)
    report = {"bundle": str(args.bundle or "shipped"), "data_root": str(data_root), "surveys": rows}
    (args.out / "surveys.json").write_text(json.dumps(report, indent=1) + "\n")
    table = markdown_table(rows)
    (args.out / "surveys.md").write_text(table)
    print(table + f"wrote {args.out / 'surveys.json'} and {args.out / 'surveys.md'}")
    return 1 if failed else 0
