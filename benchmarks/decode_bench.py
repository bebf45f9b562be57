"""Alert decoding throughput per flavour and history length, and the cost of not caching writer schemas.

One core, CPU time (process_time), best of 3: the decoder is the per-alert cost every instance pays.
The ratio that matters is cached-schema decoding vs `fastavro.reader` parsing the schema per message.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import fastavro
import numpy as np

from broker.codecs import (
    VARSTREAM_LSST_SCHEMA_ID,
    build_lsst_alert,
    build_ztf_alert,
    builtin_resolver,
    decode_lsst,
    decode_ztf,
    encode_lsst,
    encode_ztf,
    point_id,
    ztf_record_to_alert,
)
from models.lightcurve import LightCurve

N_ALERTS = 300


def _curves(n_curves: int = 20, n_points: int = 600) -> list[LightCurve]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n_curves):
        mjd = np.sort(58000 + rng.uniform(0, 700, n_points))
        mag = 15 + 0.5 * np.sin(mjd / 0.37) + rng.normal(0, 0.02, n_points)
        out.append(
            LightCurve.from_arrays(
                mjd, mag, rng.uniform(0.01, 0.05, n_points), rng.choice(["g", "r"], n_points)
            )
        )
    return out


def _rate(payloads: list[bytes], fn) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for p in payloads:
            fn(p)
        best = min(best, time.process_time() - start)
    return len(payloads) / best


def run(out_dir: str | Path) -> dict:
    curves = _curves()
    resolver = builtin_resolver()
    rows = []
    ztf = [
        encode_ztf(
            build_ztf_alert(f"ZTF{k}", point_id(f"ZTF{k}", 300 + k % 200), curves[k % 20], 300 + k % 200)
        )
        for k in range(N_ALERTS)
    ]
    points = np.mean([len(decode_ztf(p).lightcurve) for p in ztf])
    rows.append(
        {
            "case": "ztf, 30 d history",
            "kb": np.mean([len(p) for p in ztf]) / 1e3,
            "points": points,
            "alerts_per_s": _rate(ztf, decode_ztf),
            "uncached_alerts_per_s": _rate(
                ztf, lambda p: ztf_record_to_alert(next(fastavro.reader(io.BytesIO(p))))
            ),
        }
    )
    for days in (30, 365):
        lsst = [
            encode_lsst(
                build_lsst_alert(
                    f"o{k}",
                    point_id(f"o{k}", 400 + k % 200),
                    curves[k % 20],
                    400 + k % 200,
                    history_days=days,
                ),
                VARSTREAM_LSST_SCHEMA_ID,
            )
            for k in range(N_ALERTS)
        ]
        rows.append(
            {
                "case": f"lsst, {days} d history",
                "kb": np.mean([len(p) for p in lsst]) / 1e3,
                "points": np.mean([len(decode_lsst(p, resolver).lightcurve) for p in lsst]),
                "alerts_per_s": _rate(lsst, lambda p: decode_lsst(p, resolver)),
            }
        )
    ztf_rate = rows[0]["alerts_per_s"] / rows[0]["uncached_alerts_per_s"]
    result = {"rows": rows, "ratios": {"ztf_cached_vs_uncached_schema": ztf_rate}}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "decode_bench.json").write_text(json.dumps(result, indent=2, default=float))
    print("\nAlert decoding, one core (CPU time, best of 3)")
    print(f"{'case':22} {'KB':>6} {'points':>7} {'alerts/s':>9}")
    for r in rows:
        print(f"{r['case']:22} {r['kb']:6.1f} {r['points']:7.0f} {r['alerts_per_s']:9.0f}")
    print(f"ztf decode with cached writer schema vs fastavro.reader parsing it per message: {ztf_rate:.2f}x")
    return result
