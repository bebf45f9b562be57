"""The bench's tables on stdout, from the results dict run.py writes to bench.json."""

from __future__ import annotations

from benchmarks.e2e_bench import DEFAULTS_LABEL
from benchmarks.plugin_probe import STAGE_ORDER, bound_by

TARGET_ALERTS_PER_S = 1000.0
TARGET_P99_S = 1.0
TARGET_PERIOD_SPEEDUP = 3.0
TARGET_RECOVERY_GAP = 0.005
FLAVOUR_NAMES = {"ztf": "ZTF 30 d", "lsst": "LSST 12 mo"}


def _f(value, fmt: str = ".0f", missing: str = "-") -> str:
    return missing if value is None else format(value, fmt)


def print_tables(results: dict) -> None:
    machine = results.get("machine", {})
    print(
        f"\nMachine: {machine.get('platform')}, {machine.get('cpus')} CPUs, load average "
        f"{_f((machine.get('load_average_at_start') or [None])[0], '.1f')} at start, "
        f"{_f((machine.get('load_average_at_end') or [None])[0], '.1f')} at end; "
        f"bench took {_f(machine.get('bench_minutes'), '.1f')} min"
    )
    if results.get("e2e"):
        _e2e_tables(results["e2e"])
    if results.get("long"):
        m = results["long"]["memory"]
        print(
            f"\nLong run ({results['long']['send_s']:.0f} s, {results['long']['alerts']} alerts): RSS start "
            f"{m['rss_start_mb']:.0f} MB, end {m['rss_end_mb']:.0f} MB, max {m['rss_max_mb']:.0f} MB, "
            f"slope {m['rss_slope_mb_per_min']:+.1f} MB/min"
        )
    if results.get("period"):
        p = results["period"]
        print(f"\nPeriod search, same curves and grid ({p.get('source')})")
        print(f"{'':12} {'ms/curve':>9} {'recovery 1%':>12}")
        p = {**_pooled_ms(p.get("period_sets") or {}), **p}
        print(
            f"{'nifty-ls':12} {_f(p.get('nifty_ls_ms_per_curve'), '9.1f')} "
            f"{_f(p.get('period_recovery_nifty_ls'), '12.3f')}"
        )
        ours_ms, ours_rec = p.get("ours_ms_per_curve"), p.get("period_recovery_ours")
        print(f"{'ours':12} {_f(ours_ms, '9.1f')} {_f(ours_rec, '12.3f')}")
        print(f"speed-up {_f(p.get('period_speedup_vs_nifty_ls'), '.2f')}x")
    if results.get("inference"):
        i = results["inference"]
        print(
            f"\nInference ({i.get('source')}): ONNX {_f(i.get('onnx_windows_per_s'))} windows/s, "
            f"torch {_f(i.get('torch_windows_per_s'))} windows/s"
        )
    _summary_table(results["summary"])
    for key, part in (results.get("summary_missing") or {}).items():
        print(f"  {key} is None: run the {part!r} part to fill it")


def _pooled_ms(sets: dict) -> dict:
    """ms per curve of both searches pooled over the period bench's sets (weighted by their sizes)."""
    n = sum(s.get("n_objects", 0) for s in sets.values())
    if not n:
        return {}
    return {
        f"{side}_ms_per_curve": sum(s[f"ms_per_curve_{side}"] * s["n_objects"] for s in sets.values()) / n
        for side in ("nifty_ls", "ours")
        if all(f"ms_per_curve_{side}" in s for s in sets.values())
    }


def _e2e_tables(e2e: dict) -> None:
    flavours = [f for f in ("ztf", "lsst") if f in e2e]
    print(
        f"\n{'stream':11} {'alerts':>6} {'hist pts':>8} {'KB':>5} {'alerts/s':>9} {'ceiling':>8} "
        f"{'fraction':>8} {'paced/s':>8} {'p50 s':>6} {'p99 s':>6} {'RSS start/end/max MB':>21}"
    )
    for f in flavours:
        r, s = e2e[f]["runs"], e2e[f]["stream"]
        m = r["full"]["memory"]
        print(
            f"{FLAVOUR_NAMES[f]:11} {s['alerts']:6d} {s['mean_history_points']:8.0f} {s['mean_kb']:5.1f} "
            f"{r['full']['alerts_per_s']:9.0f} {r['ceiling']['alerts_per_s']:8.0f} "
            f"{e2e[f]['fraction_of_ceiling']:8.2f} {r['paced']['rate_alerts_per_s']:8.0f} "
            f"{_f(r['paced']['latency_p50_s'], '6.2f')} {_f(r['paced']['latency_p99_s'], '6.2f')} "
            f"{m.get('rss_start_mb', 0):7.0f}/{m.get('rss_end_mb', 0):.0f}/{m.get('rss_max_mb', 0):.0f}"
        )
    print("\nPer-stage time of the full runs (ms per alert, share of busy time); '-': not timed apart")
    print(f"{'stage':9}" + "".join(f" {FLAVOUR_NAMES[f]:>18}" for f in flavours))
    for stage in (*STAGE_ORDER, "other"):
        cells = []
        for f in flavours:
            row = next(r for r in e2e[f]["runs"]["full"]["stages"] if r["stage"] == stage)
            cells.append(
                "-"
                if row["seconds"] is None
                else f"{row['ms_per_alert']:8.2f} {100 * (row['share'] or 0):6.1f}%"
            )
        print(f"{stage:9}" + "".join(f" {c:>18}" for c in cells))
    print(f"{'bound by':9}" + "".join(f" {_bound(e2e[f]['runs']['full']):>18}" for f in flavours))
    print(f"{'paced':9}" + "".join(f" {_bound(e2e[f]['runs']['paced']):>18}" for f in flavours))
    print("(the stage with the most busy time; consume = waiting for alerts to fill a batch)")
    for f in flavours:
        o, r = e2e[f]["overlap"], e2e[f]["runs"]["full"]
        print(
            f"{FLAVOUR_NAMES[f]}: {r['annotated']} of {r['alerts']} alerts classified; overlapping inference "
            f"with the next period search could save at most {100 * o['max_saving_fraction']:.0f}% "
            f"(period {o['period_s']:.1f} s, infer {o['infer_s']:.1f} s of {o['busy_s']:.1f} s busy)"
        )
    _variant_table(e2e)
    _repeat_table(e2e)


def _repeat_table(e2e: dict) -> None:
    """Medians over interleaved rounds (`--e2e-repeat`): the ratios to trust on a shared machine."""
    flavours = [f for f in ("ztf", "lsst") if f in e2e and e2e[f].get("repeats")]
    if not flavours:
        return
    print("\nRepeated, interleaved rounds (median, min-max of full alerts/s; median paced p99)")
    head = ("rounds", "median/s", "min-max/s", "ratio", "p99 s")
    print(f"{'stream':11} {'settings':34} {head[0]:>6} {head[1]:>8} {head[2]:>11} {head[3]:>6} {head[4]:>6}")
    for f in flavours:
        for label, r in e2e[f]["repeats"].items():
            rates = r["full_alerts_per_s"]
            spread = f"{min(rates):.0f}-{max(rates):.0f}"
            print(
                f"{FLAVOUR_NAMES[f]:11} {label:34} {r['rounds']:6d} {r['median_full_alerts_per_s']:8.0f} "
                f"{spread:>11} {_f(r['ratio_to_defaults'], '6.2f')} {_f(r['median_paced_p99_s'], '6.2f')}"
            )


def _bound(run: dict) -> str:
    row = bound_by(run.get("stages") or [])
    return "-" if row is None else f"{row['stage']} {100 * (row['share'] or 0):.0f}%"


def _variant_table(e2e: dict) -> None:
    """Each flavour's shipped defaults and its variants side by side (same paced rate)."""
    rows = []
    for f in ("ztf", "lsst"):
        if f not in e2e or not e2e[f].get("variants"):
            continue
        rows.append((f, DEFAULTS_LABEL, e2e[f]["runs"]))
        rows += [(f, v["settings"], v["runs"]) for v in e2e[f]["variants"]]
    if not rows:
        return
    print("\nVariants, side by side (full: as fast as possible; paced: the defaults' paced rate)")
    print(
        f"{'stream':11} {'settings':34} {'full/s':>7} {'bound by':>12} {'paced/s':>7} {'batch':>6} "
        f"{'p50 s':>6} {'p99 s':>6} {'max s':>6} {'bound by':>12}"
    )
    for f, label, runs in rows:
        full, paced = runs["full"], runs["paced"]
        batch = paced["alerts"] / paced["batches"] if paced.get("batches") else None
        print(
            f"{FLAVOUR_NAMES[f]:11} {label:34} {full['alerts_per_s']:7.0f} {_bound(full):>12} "
            f"{paced['rate_alerts_per_s']:7.0f} {_f(batch, '6.0f')} {_f(paced['latency_p50_s'], '6.2f')} "
            f"{_f(paced['latency_p99_s'], '6.2f')} {_f(paced.get('latency_max_s'), '6.2f')} "
            f"{_bound(paced):>12}"
        )


def _summary_table(summary: dict) -> None:
    targets = {
        "ztf_alerts_per_s": (TARGET_ALERTS_PER_S, ">="),
        "lsst_365d_alerts_per_s": (TARGET_ALERTS_PER_S, ">="),
        "paced_p99_latency_s": (TARGET_P99_S, "<="),
        "period_speedup_vs_nifty_ls": (TARGET_PERIOD_SPEEDUP, ">="),
    }
    print("\nSummary (bench.json 'summary')")
    for key, value in summary.items():
        verdict = ""
        if key in targets and value is not None:
            target, op = targets[key]
            met = value >= target if op == ">=" else value <= target
            verdict = f"target {op} {target:g}: {'met' if met else 'missed'}"
        if key == "period_recovery_ours" and value is not None and summary.get("period_recovery_nifty_ls"):
            gap = summary["period_recovery_nifty_ls"] - value
            met = "met" if gap <= TARGET_RECOVERY_GAP else "missed"
            verdict = f"target within {TARGET_RECOVERY_GAP} of nifty-ls: {met}"
        text = _f(value, ".3g") if isinstance(value, float) else str(value)
        print(f"{key:34} {text:>10}  {verdict}")
