"""Windows/s of the served path (the classifier + the novelty bundle's iTCN and k-NN head) beside one iTCN
with its own head and beside iTCN + AE-GMM, for both inference engines (ONNX Runtime and torch), at the
plugin's shapes.

A "window" gets class probabilities and a novelty score, as the plugin answers it: by default the
contrastive-trained classifier (crts-itcn-supcon) classifies and crts-itcn's network and k-NN head score
novelty (two network passes); "one itcn" is a classifier that scores with its own head (one pass); the
AE-GMM rows are a classifier with the AE-GMM bundle named in `inference.novelty_bundle`.
Shapes follow the plugin: batches of up to `inference.max_batch_windows` (512) windows, one true length per
forward pass; a micro-batch of old objects mixes the 50/100/150/200 buckets, one of young objects any
length from 50 to 199 points (one window of all their points).

    python benchmarks/inference_bench.py [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from models.bundle_format import AEGMM_BUNDLE, DEFAULT_CLASSIFIER_BUNDLE, DEFAULT_NOVELTY_BUNDLE
from models.windows import Windows

# (name, window lengths of the batch): the plugin's shapes
SHAPES = {
    "64x200": [200] * 64,
    "512x200": [200] * 512,
    # young objects served as one window of all their points (short_window "all"): any length, each
    # distinct length its own forward pass of the dynamic-length graph
    "512 young, 50-199 points": [int(n) for n in np.random.default_rng(0).integers(50, 200, 512)],
    "512 mixed 50/100/150/200": [50, 100, 150, 200] * 128,  # last: the headline keys
}


def synthetic_windows(lengths: list[int], seed: int = 0) -> Windows:
    """Folded-window-like inputs (timing does not depend on the values, only on the shapes)."""
    rng = np.random.default_rng(seed)
    n = len(lengths)
    x = np.zeros((n, 200, 3), np.float32)
    for i, k in enumerate(lengths):
        x[i, :k, 0] = 1.0 / k
        x[i, :k, 1] = np.sin(np.linspace(0, 2 * np.pi, k)) + rng.normal(0, 0.1, k)
        x[i, :k, 2] = 0.1
    aux = np.column_stack([rng.normal(16, 1, n), rng.uniform(0.1, 1, n), rng.uniform(-1, 2, n)])
    return Windows(x, aux.astype(np.float32), np.asarray(lengths, np.int32), np.array(["o"] * n, object))


def _rate(bundles, windows: Windows, device: str, min_seconds: float) -> float:
    for b in bundles:  # warm-up: sessions/kernels planned, model moved to the device
        b.predict(windows, device=device, batch_size=512)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds or done == 0:
        for b in bundles:
            b.predict(windows, device=device, batch_size=512)
        done += len(windows)
    return done / (time.perf_counter() - start)


def measure(threads: int = 1, device: str = "cpu", min_seconds: float = 2.0, shapes=None) -> dict:
    """Served path {"onnx_windows_per_s", "torch_windows_per_s"} (classifier + the novelty bundle's iTCN and
    k-NN head), one iTCN with its own head {"onnx_one_itcn_windows_per_s", ...} and iTCN + AE-GMM
    {"onnx_aegmm_windows_per_s", "torch_aegmm_windows_per_s"} at the last shape, plus per-shape rates
    ("onnx", "torch": served; "onnx one itcn", "onnx itcn+aegmm" and their torch rows).

    threads: intra-op threads of both engines (1 = one core each, the fair comparison on a shared box).
    The torch side is skipped (None) when torch is not installed (the plugin's lean install).
    """
    from models.head_novelty import HeadNovelty
    from models.onnx_serving import OnnxBundle

    shapes = shapes or SHAPES

    def onnx(path, with_novelty_head: bool = False):
        return OnnxBundle(path, device=device, threads=threads, with_novelty_head=with_novelty_head)

    classifier = onnx(DEFAULT_CLASSIFIER_BUNDLE)  # one loaded classifier serves both of its paths
    head = HeadNovelty(onnx(DEFAULT_NOVELTY_BUNDLE, with_novelty_head=True))
    engines = {
        "onnx": [classifier, head],
        "onnx one itcn": [head.bundle],
        "onnx itcn+aegmm": [classifier, onnx(AEGMM_BUNDLE)],
    }
    try:
        import torch

        from models.bundle import load_bundle

        torch.set_num_threads(threads)
        torch_classifier = load_bundle(DEFAULT_CLASSIFIER_BUNDLE, with_novelty_head=False)
        torch_head = HeadNovelty(load_bundle(DEFAULT_NOVELTY_BUNDLE))
        engines["torch"] = [torch_classifier, torch_head]
        engines["torch one itcn"] = [torch_head.bundle]
        engines["torch itcn+aegmm"] = [torch_classifier, load_bundle(AEGMM_BUNDLE)]
    except ImportError:
        pass
    per_shape = {}
    for name, lengths in shapes.items():
        windows = synthetic_windows(lengths)
        per_shape[name] = {
            engine: round(_rate(bundles, windows, device, min_seconds), 1)
            for engine, bundles in engines.items()
        }
    headline = per_shape[next(reversed(per_shape))]
    return {
        "onnx_windows_per_s": headline["onnx"],
        "torch_windows_per_s": headline.get("torch"),
        "onnx_one_itcn_windows_per_s": headline["onnx one itcn"],
        "torch_one_itcn_windows_per_s": headline.get("torch one itcn"),
        "onnx_aegmm_windows_per_s": headline["onnx itcn+aegmm"],
        "torch_aegmm_windows_per_s": headline.get("torch itcn+aegmm"),
        "served_novelty": head.name,
        "by_shape": per_shape,
        "threads": threads,
        "device": device,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum timing per shape and engine")
    args = parser.parse_args()
    print(json.dumps(measure(args.threads, args.device, args.seconds), indent=1))


if __name__ == "__main__":
    main()
