"""Plain nifty-ls vs the plugin's period search on the same labelled curves and grid (the bench's fallback).

Used by run.py only while benchmarks/period_bench.py has no `compare_with_nifty_ls()`; that function, owned
by the period search, replaces this one. Both sides get the plugin's grid for each curve (default
`PeriodSearchConfig`: 0.05 d .. baseline, oversampling 5) on the same bands-centred magnitudes; "plain" is
one nifty-ls call per curve and the highest peak, "ours" is `search_periods` over the batch (grid, engine,
refinement, false-alarm probability). Recovery: |P - P_catalogue| / P_catalogue < 1%. One thread, CPU time.
"""

from __future__ import annotations

import time

import numpy as np

N_CURVES = 40
TOLERANCE = 0.01


def labelled_curves(n: int = N_CURVES) -> list:
    """The first n CRTS objects with a catalogue period and >= 100 points (archive order)."""
    from benchmarks.stream import DEFAULT_CRTS
    from broker.offline.archives import open_archive

    out = []
    for obj in open_archive(f"crts:{DEFAULT_CRTS}"):
        if obj.period and obj.period > 0 and len(obj.lightcurve) >= 100:
            out.append(obj)
            if len(out) == n:
                break
    return out


def compare(n: int = N_CURVES) -> dict:
    from nifty_ls import lombscargle

    from broker.period import PeriodSearchConfig, centre_bands, frequency_grid, search_periods

    config = PeriodSearchConfig()
    objects = labelled_curves(n)
    truth = np.array([o.period for o in objects], dtype=float)
    lcs = [o.lightcurve for o in objects]

    plain, started = [], time.process_time()
    for lc in lcs:
        t = np.asarray(lc.mjd, dtype=np.float64)
        grid, _ = frequency_grid(float(t[-1] - t[0]), config)
        dy = np.asarray(lc.magerr, dtype=np.float64)
        result = lombscargle(t, centre_bands(lc), dy, fmin=grid.f0, fmax=grid.fmax, Nf=grid.n, nthreads=1)
        plain.append(1.0 / (grid.f0 + grid.df * int(np.argmax(result.power))))
    plain_ms = 1e3 * (time.process_time() - started) / len(lcs)

    started = time.process_time()
    ours = np.array([r.period_days for r in search_periods(lcs, config)])
    ours_ms = 1e3 * (time.process_time() - started) / len(lcs)

    def recovered(found) -> float:
        return float(np.mean(np.abs(np.asarray(found) - truth) / truth < TOLERANCE))

    return {
        "source": "benchmarks.period_compare (fallback)",
        "curves": len(lcs),
        "nifty_ls_ms_per_curve": plain_ms,
        "ours_ms_per_curve": ours_ms,
        "period_speedup_vs_nifty_ls": plain_ms / ours_ms,
        "period_recovery_ours": recovered(ours),
        "period_recovery_nifty_ls": recovered(plain),
    }
