"""Lomb-Scargle cost per light curve, every backend side by side on the same frequency grid, one core.

Cases: a synthetic N=300 light curve on a 1e5-frequency grid (the DESIGN's reference numbers: nifty-ls
≈ 14 ms, astropy fast ≈ 70 ms, astropy default ≈ 230 ms); a real CRTS light curve on the grid the plugin
actually searches (0.05 d .. baseline, oversampling 5: ~3e5 frequencies); nifty-ls's own batch mode
(light curves sharing t); and the whole `search_periods` path (grid, backend, Baluev FAP) over a batch of
heterogeneous light curves.

`run_recovery` measures how often the search finds the catalogue period on the cached CRTS and EROS
window datasets (within 1%, and allowing ×2 / ×½ aliases), per class.

Run: ``.venv/bin/python -m benchmarks.period_bench [out_dir] [--recovery]`` (writes out_dir/*.json).
"""

from __future__ import annotations

import json
import platform
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

from broker.period import BACKENDS, FrequencyGrid, PeriodSearchConfig, Series, frequency_grid, search_periods
from models.lightcurve import LightCurve

CRTS_ARCHIVE = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "crts_kvmu" / "raw-lc_17-05-2017_1615.tar.xz"
)
N_POINTS = 300
N_FREQUENCIES = 100_000
BATCH = 32


def _timed_ms(call, repeats: int) -> float:
    """Median CPU time of `repeats` calls after one warm-up call [ms].

    CPU time of this (single-threaded: every backend runs with one thread) process, not wall time: the
    machine is shared, and wall time on a loaded core measures the neighbours."""
    call()
    samples = []
    for _ in range(repeats):
        start = time.process_time()
        call()
        samples.append(time.process_time() - start)
    return 1e3 * float(np.median(samples))


def synthetic_series(seed: int = 0, n: int = N_POINTS) -> Series:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0.0, 3000.0, n))
    y = 15.0 + 0.3 * np.sin(2 * np.pi * t / 0.617) + rng.normal(0, 0.05, n)
    return Series(t, y, np.full(n, 0.05), FrequencyGrid(1 / 3000.0, 20.0 / N_FREQUENCIES, N_FREQUENCIES))


def crts_lightcurve(archive: Path = CRTS_ARCHIVE, min_points: int = 280) -> tuple[str, LightCurve]:
    """The first CRTS training light curve in the archive with at least `min_points` points."""
    with tarfile.open(archive, "r:xz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(".csv"):
                continue
            rows = np.loadtxt(tar.extractfile(member), delimiter=",", skiprows=1, usecols=(1, 2, 3))
            if len(rows) >= min_points:
                return Path(member.name).name, LightCurve.from_arrays(rows[:, 0], rows[:, 1], rows[:, 2])
    raise FileNotFoundError(f"no CRTS light curve with >= {min_points} points in {archive}")


def _backend_row(series: Series, repeats: dict[str, int]) -> dict[str, float]:
    return {
        name: _timed_ms(lambda b=backend: b([series], 1), repeats[name]) for name, backend in BACKENDS.items()
    }


def run(out_dir: str | Path) -> dict:
    """Time every backend on the reference cases; print a table; write and return the results."""
    from nifty_ls.finufft import lombscargle as nifty_lombscargle

    repeats = {"nifty-ls": 7, "astropy-fast": 5, "astropy": 3}
    synthetic = synthetic_series()
    name, real = crts_lightcurve()
    grid, _ = frequency_grid(real.baseline_days, PeriodSearchConfig())
    crts_series = Series(real.mjd, real.mag, real.magerr, grid)

    shared_t = np.stack([synthetic_series(seed).y for seed in range(BATCH)])
    g = synthetic.grid
    batched_ms = _timed_ms(
        lambda: nifty_lombscargle(synthetic.t, shared_t, g.f0, g.df, g.n, dy=synthetic.dy, nthreads=1), 3
    )
    heterogeneous = [
        LightCurve.from_arrays(s.t, s.y, s.dy) for s in (synthetic_series(seed) for seed in range(BATCH))
    ]
    search_ms = _timed_ms(lambda: search_periods(heterogeneous, PeriodSearchConfig()), 1)

    results = {
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "threads": 1,
            "clock": "process CPU time, median",
        },
        "synthetic": {
            "n_points": N_POINTS,
            "n_frequencies": N_FREQUENCIES,
            "ms": _backend_row(synthetic, repeats),
        },
        "crts": {
            "file": name,
            "n_points": len(real),
            "n_frequencies": grid.n,
            "ms": _backend_row(crts_series, repeats),
        },
        "nifty_ls_shared_t_batch": {
            "batch": BATCH,
            "n_frequencies": N_FREQUENCIES,
            "ms_per_curve": batched_ms / BATCH,
        },
        "search_periods_batch": {
            "batch": BATCH,
            "n_frequencies_per_curve": frequency_grid(3000.0, PeriodSearchConfig())[0].n,
            "ms_per_curve": search_ms / BATCH,
        },
    }
    _print_table(results)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "period_bench.json").write_text(json.dumps(results, indent=2))
    return results


def _print_table(results: dict) -> None:
    cases = [("synthetic", "N=300, 1e5 freq"), ("crts", "CRTS {n_points} pts, {n_frequencies} freq")]
    print(f"{'case':<36}" + "".join(f"{name:>14}" for name in BACKENDS))
    for key, label in cases:
        row = results[key]
        print(f"{label.format(**row):<36}" + "".join(f"{row['ms'][name]:>11.1f} ms" for name in BACKENDS))
    batch = results["nifty_ls_shared_t_batch"]
    print(
        f"nifty-ls batch of {batch['batch']} sharing t (1e5 freq): {batch['ms_per_curve']:.1f} ms per curve"
    )
    search = results["search_periods_batch"]
    print(
        f"search_periods, {search['batch']} heterogeneous curves ({search['n_frequencies_per_curve']} freq, "
        f"grid + backend + FAP): {search['ms_per_curve']:.1f} ms per curve"
    )


def recovery(table, tolerance: float = 0.01) -> dict:
    """Fractions of searched objects whose found period matches the catalogue one, overall and per class.

    table: a WindowDataset.objects frame. "exact": |P/P_cat − 1| < tolerance; "with_aliases": also
    P/P_cat within tolerance of 2 or ½ (harmonics a one-term periodogram legitimately prefers)."""
    rows = table[np.isfinite(table["period_days"]) & np.isfinite(table["catalogue_period"])]
    ratio = (rows["period_days"] / rows["catalogue_period"]).to_numpy()
    exact = np.abs(ratio - 1) < tolerance
    alias = exact | (np.abs(ratio / 2 - 1) < tolerance) | (np.abs(ratio * 2 - 1) < tolerance)

    def summary(mask) -> dict:
        n = int(mask.sum())
        return {
            "n": n,
            "exact": float(exact[mask].mean()) if n else None,
            "with_aliases": float(alias[mask].mean()) if n else None,
        }

    labels = rows["label"].astype(str).to_numpy()
    return {
        "all": summary(np.ones(len(rows), bool)),
        **{c: summary(labels == c) for c in sorted(set(labels))},
    }


def run_recovery(out_dir: str | Path) -> dict:
    """Period recovery and search cost on the CRTS (vs FATS PeriodLS) and EROS (vs catalogue) caches."""
    from broker.offline.dataset import load_or_build_crts, load_or_build_eros

    results = {}
    for name, load in (("crts_vs_fats", load_or_build_crts), ("eros_vs_catalogue", load_or_build_eros)):
        dataset = load()
        results[name] = {
            "recovery": recovery(dataset.objects),
            "period_search_ms_per_lightcurve": dataset.meta["period_search_ms_per_lightcurve"],
            "windows_per_class": dataset.windows_per_class(),
            "skips": dataset.objects["skip_reason"].value_counts().to_dict(),
        }
        overall = results[name]["recovery"]["all"]
        print(f"{name}: {overall['n']} objects, within 1%: {overall['exact']:.3f}, ", end="")
        print(f"with x2/x0.5: {overall['with_aliases']:.3f}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "period_recovery.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    target = arguments[0] if arguments else "OUT/benchmarks"
    if "--recovery" in sys.argv:
        run_recovery(target)
    else:
        run(target)
