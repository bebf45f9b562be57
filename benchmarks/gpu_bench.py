"""The GPU part of the bench: period-search curves/s at 1e5..1e6 frequencies, iTCN + AE-GMM windows/s,
and (with --e2e) end-to-end alerts/s through a local Kafka with the plugin on the GPU.

On a machine without CUDA it says so and exits 0. Run on a GPU machine from the repo root:
    python benchmarks/gpu_bench.py --out OUT/bench [--e2e]
(the period search needs nifty-ls's CUDA backend: `pip install nifty-ls[cuda]`). Writes gpu_bench.json with
the gpu_* keys that run.py adds to bench.json's summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from the repo root

FREQUENCIES = (100_000, 300_000, 1_000_000)
N_CURVES = 256
N_POINTS = 300
N_OBJECTS = 512  # for inference: ~2 windows each, the plugin's batch shapes


def cuda_card() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def _curves(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        t = np.sort(rng.uniform(0.0, 3000.0, N_POINTS))
        period = rng.uniform(0.2, 20.0)
        y = 15.0 + 0.3 * np.sin(2 * np.pi * t / period) + rng.normal(0, 0.05, N_POINTS)
        out.append((t, y, np.full(N_POINTS, 0.05)))
    return out


def period_curves_per_s() -> dict:
    """The plugin's cuda period engine through period_bench.gpu_period_summary when it exists; else
    nifty-ls on the GPU (cufinufft), one heterogeneous curve per call and a batch sharing times."""
    from benchmarks import period_bench

    engine_summary = getattr(period_bench, "gpu_period_summary", None)
    if callable(engine_summary):
        found = engine_summary()
        if found:
            return found
    from nifty_ls import lombscargle

    curves = _curves(N_CURVES)
    out = {}
    for nf in FREQUENCIES:
        fmin, fmax = 1 / 3000.0, 20.0
        t, y, dy = curves[0]
        lombscargle(t, y, dy, fmin=fmin, fmax=fmax, Nf=nf, backend="cufinufft")  # warm-up (plan, context)
        started = time.perf_counter()
        for t, y, dy in curves:
            lombscargle(t, y, dy, fmin=fmin, fmax=fmax, Nf=nf, backend="cufinufft")
        out[f"gpu_period_curves_per_s_{nf:.0e}".replace("+0", "")] = N_CURVES / (
            time.perf_counter() - started
        )
        ys = np.stack([y for _, y, _ in curves])
        started = time.perf_counter()
        lombscargle(curves[0][0], ys, curves[0][2], fmin=fmin, fmax=fmax, Nf=nf, backend="cufinufft")
        key = f"gpu_period_batched_curves_per_s_{nf:.0e}".replace("+0", "")
        out[key] = N_CURVES / (time.perf_counter() - started)
    return out


def windows_per_s(device: str) -> float:
    """iTCN + AE-GMM (the plugin's InferenceRuntime.classify) on folded windows of synthetic curves."""
    from broker.config import InferenceConfig
    from broker.folding import make_windows
    from broker.runtime import InferenceRuntime
    from models.lightcurve import LightCurve

    runtime = InferenceRuntime(InferenceConfig(device=device))
    rng = np.random.default_rng(1)
    per_object = []
    for k, (t, y, dy) in enumerate(_curves(N_OBJECTS, seed=1)):
        lc = LightCurve.from_arrays(t, y, dy, np.full(len(t), "r"))
        per_object.append(
            make_windows(lc, float(rng.uniform(0.2, 20.0)), f"o{k}", None, runtime.window_config)
        )
    runtime.classify(per_object[:8])  # warm-up
    n_windows = sum(len(w) for w in per_object)
    started = time.perf_counter()
    runtime.classify(per_object)
    return n_windows / (time.perf_counter() - started)


def run(out_dir: str | Path, e2e: bool = False) -> dict:
    card = cuda_card()
    if card is None:
        print("gpu_bench: no CUDA GPU on this machine; nothing to measure")
        return {}
    out: dict = {"gpu_card": card}
    try:
        out |= period_curves_per_s()
    except Exception as exc:  # e.g. nifty-ls without its CUDA backend: the other parts still run
        out["gpu_period_error"] = f"{type(exc).__name__}: {exc}"
    out["gpu_windows_per_s"] = windows_per_s("cuda")
    if e2e:
        from benchmarks import e2e_bench
        from broker.offline.local_kafka import LocalKafka

        with LocalKafka() as kafka:  # the plugin's device is "auto": the GPU here
            result = e2e_bench.run(Path(out_dir) / "gpu", kafka)
        out["gpu_ztf_alerts_per_s"] = result["ztf"]["runs"]["full"]["alerts_per_s"]
        out["gpu_lsst_365d_alerts_per_s"] = result["lsst"]["runs"]["full"]["alerts_per_s"]
        out["gpu_paced_p99_latency_s"] = max(
            result[f]["runs"]["paced"]["latency_p99_s"] or 0.0 for f in ("ztf", "lsst")
        )
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "gpu_bench.json").write_text(json.dumps(out, indent=2))
    for key, value in out.items():
        print(f"{key:44} {value:,.1f}" if isinstance(value, float) else f"{key:44} {value}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("OUT/bench"))
    parser.add_argument("--e2e", action="store_true", help="also the end-to-end runs through a local Kafka")
    args = parser.parse_args(argv)
    run(args.out, args.e2e)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
