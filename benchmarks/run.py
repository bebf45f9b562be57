"""`make bench`: every benchmark side by side in one run; tables on stdout, OUT/bench/bench.json.

bench.json's "summary" holds exactly SUMMARY_KEYS, plus gpu_* keys when a GPU was used. Its keys come from
two parts, e2e and period; a selection with --only e2e also runs the period part (~3 min here), so the
summary is complete; a selection without e2e leaves the e2e keys None, and "summary_missing" names the
part that would fill each None. Parts measure the plugin through its public entry points (the
`varstream run` process, its summary and /metrics; `search_periods`; the inference runtime), so they
follow the code they run on.
Absolute numbers on a shared 2-core machine are noisy (the load average is recorded); ratios carry further.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from the repo root

from benchmarks import report
from benchmarks.plugin_probe import parse_setting

PARTS = ("period", "inference", "decode", "e2e", "replay", "period-backends")
DEFAULT_PARTS = ("period", "inference", "decode", "e2e")
SUMMARY_KEYS = (
    "ztf_alerts_per_s",
    "lsst_365d_alerts_per_s",
    "ztf_ceiling_alerts_per_s",
    "lsst_365d_ceiling_alerts_per_s",
    "paced_p99_latency_s",
    "period_speedup_vs_nifty_ls",
    "period_recovery_ours",
    "period_recovery_nifty_ls",
)
SUMMARY_PARTS = {"period": ("period_speedup_vs_nifty_ls", "period_recovery_ours", "period_recovery_nifty_ls")}
SUMMARY_PARTS["e2e"] = tuple(k for k in SUMMARY_KEYS if k not in SUMMARY_PARTS["period"])
# Names the period bench may give its {"period_speedup_vs_nifty_ls", "period_recovery_*"} function.
PERIOD_FUNCTIONS = ("compare_with_nifty_ls", "period_summary")
# Names the inference bench may give its {"onnx_windows_per_s", "torch_windows_per_s"} function.
INFERENCE_FUNCTIONS = ("compare_engines", "measure", "windows_per_s", "run")


def e2e_flavours() -> tuple[str, ...]:
    return ("ztf", "lsst")  # benchmarks.e2e_bench.FLAVOURS (imported lazily: it pulls in the broker)


def period_comparison() -> dict:
    """The period search's own comparison when it exists, else this bench's fallback."""
    from benchmarks import period_bench

    for name in PERIOD_FUNCTIONS:
        compare = getattr(period_bench, name, None)
        if callable(compare):
            return {"source": f"benchmarks.period_bench.{name}"} | compare()
    from benchmarks import period_compare

    return period_compare.compare()


def inference_comparison(out_dir: Path) -> dict | None:
    """ONNX vs torch windows/s from benchmarks/inference_bench.py, when that module exists."""
    try:
        module = importlib.import_module("benchmarks.inference_bench")
    except ModuleNotFoundError:
        return None
    for name in INFERENCE_FUNCTIONS:
        fn = getattr(module, name, None)
        if callable(fn):
            wants_dir = any(
                p.default is inspect.Parameter.empty for p in inspect.signature(fn).parameters.values()
            )
            return {"source": f"benchmarks.inference_bench.{name}"} | dict(fn(out_dir) if wants_dir else fn())
    return None


def summarise(results: dict) -> dict:
    e2e, period = results.get("e2e") or {}, results.get("period") or {}

    def run_value(flavour: str, mode: str, key: str):
        return ((e2e.get(flavour) or {}).get("runs") or {}).get(mode, {}).get(key)

    p99 = [run_value(f, "paced", "latency_p99_s") for f in ("ztf", "lsst")]
    p99 = [v for v in p99 if v is not None]
    summary = {
        "ztf_alerts_per_s": run_value("ztf", "full", "alerts_per_s"),
        "lsst_365d_alerts_per_s": run_value("lsst", "full", "alerts_per_s"),
        "ztf_ceiling_alerts_per_s": run_value("ztf", "ceiling", "alerts_per_s"),
        "lsst_365d_ceiling_alerts_per_s": run_value("lsst", "ceiling", "alerts_per_s"),
        "paced_p99_latency_s": max(p99) if p99 else None,  # the worse flavour
        "period_speedup_vs_nifty_ls": period.get("period_speedup_vs_nifty_ls"),
        "period_recovery_ours": period.get("period_recovery_ours"),
        "period_recovery_nifty_ls": period.get("period_recovery_nifty_ls"),
    }
    assert tuple(summary) == SUMMARY_KEYS
    gpu = results.get("gpu") or {}
    return summary | {k: v for k, v in gpu.items() if k.startswith("gpu_")}


def summary_missing(summary: dict) -> dict[str, str]:
    """key -> the --only part that fills it, for every summary key left None."""
    return {k: part for part, keys in SUMMARY_PARTS.items() for k in keys if summary.get(k) is None}


def parts_to_run(only: list[str] | None) -> list[str]:
    """The selected parts, with "period" added to any selection holding "e2e" (the summary needs both)."""
    todo = list(only or DEFAULT_PARTS)
    if "e2e" in todo and "period" not in todo:
        print("--only e2e: the period part runs too, so the summary has every key", flush=True)
        todo.insert(0, "period")
    return todo


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("OUT/bench"))
    parser.add_argument(
        "--only",
        choices=PARTS,
        action="append",
        help=f"run only these parts (default {DEFAULT_PARTS}); e2e brings period along (summary keys)",
    )
    parser.add_argument(
        "--e2e-flavour",
        choices=e2e_flavours(),
        action="append",
        help="e2e: only these stream flavours (default both)",
    )
    parser.add_argument(
        "--e2e-variant",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE[,...]",
        help="e2e: also a full and a paced run (same rate as the defaults' paced run) with these settings "
        "on top of the shipped defaults, e.g. kafka.batch_timeout_s=0.1 (repeat for more variants)",
    )
    parser.add_argument(
        "--e2e-repeat",
        type=int,
        default=1,
        metavar="N",
        help="e2e: run the defaults and every variant N times, interleaved, and report each one's median "
        "and spread (default 1; about 1.5 minutes per ZTF setting and round here)",
    )
    parser.add_argument("--long", action="store_true", help="also the 10-minute memory run (ZTF-like, paced)")
    parser.add_argument(
        "--long-rate", type=float, help="alerts/s of the long run (default: half the ZTF full run's, else 30)"
    )
    args = parser.parse_args(argv)
    variants = [parse_setting(v) for v in args.e2e_variant]
    if args.e2e_repeat < 1:
        parser.error(f"--e2e-repeat must be at least 1, got {args.e2e_repeat}")
    args.out.mkdir(parents=True, exist_ok=True)
    todo = parts_to_run(args.only)
    started = time.monotonic()
    results: dict = {"machine": machine()}
    if "period" in todo:
        results["period"] = period_comparison()
    if "period-backends" in todo:
        from benchmarks import period_bench

        results["period_backends"] = period_bench.run(args.out)
    if "inference" in todo:
        results["inference"] = inference_comparison(args.out)
    if "decode" in todo:
        from benchmarks import decode_bench

        results["decode"] = decode_bench.run(args.out)
    from benchmarks import gpu_bench

    if gpu_bench.cuda_card() is not None:
        results["gpu"] = gpu_bench.run(args.out)
    if {"replay", "e2e"} & set(todo) or args.long:
        from benchmarks import e2e_bench, replay_bench
        from broker.offline.local_kafka import LocalKafka

        with LocalKafka() as kafka:
            if "replay" in todo:
                results["replay"] = replay_bench.run(args.out, bootstrap=kafka.bootstrap_servers)
            if "e2e" in todo:
                print("\nEnd to end through Kafka (each run: a `varstream run` process)", flush=True)
                flavours = tuple(args.e2e_flavour or e2e_flavours())
                results["e2e"] = e2e_bench.run(args.out, kafka, flavours, variants, args.e2e_repeat)
            if args.long:
                ztf = (results.get("e2e") or {}).get("ztf", {}).get("runs", {}).get("full", {})
                rate = args.long_rate or (0.5 * ztf["alerts_per_s"] if ztf else 30.0)
                print(f"\nLong run: ZTF-like at {rate:.0f} alerts/s for 10 minutes", flush=True)
                results["long"] = e2e_bench.run_long(args.out, kafka, rate)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    results["machine"]["bench_minutes"] = (time.monotonic() - started) / 60
    summary = summarise(results)
    results = {"summary": summary, "summary_missing": summary_missing(summary)} | results
    (args.out / "bench.json").write_text(json.dumps(results, indent=2, default=float))
    report.print_tables(results)
    print(f"\nwritten to {args.out}/bench.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
