"""Serve a bundle through ONNX Runtime, without torch: the plugin's default inference engine.

Reads the ONNX export written by `models.onnx_export` (listed in metadata.json under "onnx") and answers
with the same `Prediction` as the torch bundle: softmax in float64, and for the AE-GMM the sample energy
E(z) = −log Σ_k φ_k N(z; μ_k, Σ_k) computed in numpy float64 from the fixed mixture; for a classifier with
a novelty head (`models.novelty_head`), the head's k-NN score of the exported embedding output. A
classifier's per-length temperatures (`models.calibration`) divide its logits before the softmax.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from models.bundle_format import (
    ANY_LENGTH,
    BundleFormatError,
    Prediction,
    check_lengths,
    energy_ranks,
    length_groups,
    pad_rows,
    read_document,
)
from models.calibration import softmax, table_from_metadata
from models.novelty_head import load_head
from models.windows import Windows

COVARIANCE_JITTER = 1e-4  # as models.aegmm: added to every Σ_k diagonal so the Cholesky factor exists
CLASSIFIER_CHANNELS = [0, 1]  # (Δphase, mag) of Windows.x, as models.itcn.INPUT_CHANNELS


def available_providers() -> list[str]:
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def providers_for(device: str) -> list[str]:
    """ONNX Runtime execution providers for "cpu" or "cuda[:N]" (CUDA needs onnxruntime-gpu)."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available_providers():
            raise BundleFormatError(
                f"device {device!r} with the onnx engine needs onnxruntime-gpu (CUDAExecutionProvider)"
            )
        index = int(device.partition(":")[2] or 0)
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    raise BundleFormatError(f"device must be cpu or cuda[:N] for the onnx engine, got {device!r}")


def has_onnx_export(path: str | Path) -> bool:
    """True when the bundle folder's metadata lists an ONNX export."""
    try:
        return bool(read_document(path).get("onnx"))
    except BundleFormatError:
        return False


class MixtureEnergy:
    """E(z) of the fixed Gaussian mixture, (n, D) → (n,), float64 through precomputed Cholesky factors."""

    def __init__(self, phi: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> None:
        d = mu.shape[1]
        cov64 = cov.astype(np.float64) + COVARIANCE_JITTER * np.eye(d)
        chol = np.linalg.cholesky(cov64)  # (K, D, D)
        self.inv_chol = np.linalg.inv(chol)  # (K, D, D): Mahalanobis = |L⁻¹ (z − μ)|²
        self.mu = mu.astype(np.float64)
        log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)  # (K,)
        self.log_norm = np.log(np.clip(phi.astype(np.float64), 1e-12, None)) - 0.5 * (
            log_det + d * math.log(2 * math.pi)
        )

    def __call__(self, z: np.ndarray) -> np.ndarray:
        centred = z.astype(np.float64)[None, :, :] - self.mu[:, None, :]  # (K, n, D)
        solved = np.einsum("kij,knj->kni", self.inv_chol, centred)
        log_terms = self.log_norm[:, None] - 0.5 * (solved**2).sum(axis=2)  # (K, n)
        top = log_terms.max(axis=0)
        return -(top + np.log(np.exp(log_terms - top).sum(axis=0)))


class OnnxBundle:
    """A bundle served by ONNX Runtime; the same attributes and `predict` as `models.bundle.Bundle`."""

    def __init__(
        self, path: str | Path, device: str = "cpu", threads: int = 0, with_novelty_head: bool = True
    ) -> None:
        """with_novelty_head=False leaves a classifier's novelty head unloaded (not scored): load_bundle's."""
        import onnxruntime

        path = Path(path)
        document = read_document(path)
        section = document.get("onnx")
        if not section:
            raise BundleFormatError(
                f"bundle {path} has no ONNX export; write it with `varstream export-onnx --bundle {path}`"
            )
        self.path = path
        self.kind = document["kind"]
        self.name = document.get("name", path.name)
        self.version = document.get("version", "0")
        self.class_names = list(document["class_names"])
        self.window = dict(document.get("window", {}))
        self.period_search = dict(document.get("period_search", {}))
        self.metadata = dict(document["metadata"])
        self.device = device
        self._ranks = energy_ranks(document, path)
        self.novelty_head = load_head(path, document) if with_novelty_head else None
        self.temperature = table_from_metadata(self.metadata) if self.kind == "classifier" else None
        options = onnxruntime.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        providers = providers_for(device)

        def session(name: str):
            file = path / name
            if not file.is_file():
                raise BundleFormatError(f"bundle {path}: missing {name} (listed in metadata.json)")
            return onnxruntime.InferenceSession(str(file), options, providers=providers)

        files = section["files"]
        if self.kind == "classifier":
            # {"50": file, ..., "any": file}: a graph per bucket length, one dynamic-length graph for others
            # (exports before 2026-12-07 have no "any")
            self._sessions = {
                k if k == ANY_LENGTH else int(k): session(v) for k, v in files["classifier"].items()
            }
            self._energy = None
            if self.window.get("short_window") == "all" and ANY_LENGTH not in self._sessions:
                raise BundleFormatError(
                    f"bundle {path}: its young objects' windows come in any length (short_window 'all'), "
                    f"but its ONNX export has one graph per bucket length only; re-export it with "
                    f"`varstream export-onnx --bundle {path}`"
                )
            outputs = [o.name for o in next(iter(self._sessions.values())).get_outputs()]
            if self.novelty_head is not None and "embedding" not in outputs:
                raise BundleFormatError(
                    f"bundle {path}: its ONNX export has no embedding output for the novelty head; "
                    f"re-export it with `varstream export-onnx --bundle {path}`"
                )
        else:
            self._sessions = {0: session(files["novelty"])}
            gmm_file = path / files["gmm"]
            if not gmm_file.is_file():
                raise BundleFormatError(f"bundle {path}: missing {files['gmm']} (listed in metadata.json)")
            with np.load(gmm_file) as gmm:
                self._energy = MixtureEnergy(gmm["phi"], gmm["mu"], gmm["cov"])

    def __repr__(self) -> str:
        return f"OnnxBundle({self.kind!r}, {self.name!r}, version={self.version!r}, device={self.device!r})"

    def _run(self, length: int, x: np.ndarray, aux: np.ndarray) -> list[np.ndarray]:
        if self.kind == "classifier":
            sess = self._sessions.get(length) or self._sessions.get(ANY_LENGTH)
            if sess is None:
                raise BundleFormatError(
                    f"bundle {self.path}: no ONNX classifier for window length {length} "
                    f"(exported: {sorted(self._sessions)})"
                )
            x = np.ascontiguousarray(x[:, :, CLASSIFIER_CHANNELS].transpose(0, 2, 1))
        else:
            sess = self._sessions[0]
        return sess.run(None, {"x": np.ascontiguousarray(x, np.float32), "aux": aux.astype(np.float32)})

    def predict(
        self, windows: Windows, device: str | None = None, batch_size: int = 512, pad_batches: bool = False
    ) -> Prediction:
        """Class probabilities (and energies for novelty bundles) of every window, in input order.

        One true length per batch, as the torch bundle; `device` is fixed when the bundle is loaded.
        """
        n = len(windows)
        lengths = np.asarray(windows.lengths)
        check_lengths(lengths, windows.window_length)
        proba = np.zeros((n, len(self.class_names)), np.float64)
        energy = np.zeros(n, np.float64) if self.kind == "novelty" else None
        score = np.zeros(n, np.float64) if self.novelty_head is not None else None
        for length, index in length_groups(lengths, batch_size):
            rows = pad_rows(index) if pad_batches else index
            keep = len(index)
            outputs = self._run(length, windows.x[rows, :length], windows.aux[rows])
            scale = 1.0 if self.temperature is None else self.temperature.scale(length)
            proba[index] = softmax(outputs[-1][:keep], scale)
            if energy is not None:
                energy[index] = self._energy(outputs[0][:keep]).astype(np.float32)  # as torch: float32
            if score is not None:
                score[index] = self.novelty_head.score(outputs[0][:keep], windows.aux[index])
        return Prediction(proba=proba, energy=energy, novelty_score=score)

    def novelty_percentile(self, score: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """Percentile (0–100) of novelty-head scores among its calibration windows of each length."""
        if self.novelty_head is None:
            raise BundleFormatError(f"bundle {self.name!r} has no novelty head")
        return self.novelty_head.percentile(score, lengths)

    def energy_percentile(self, energy: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """Percentile (0–100) of each energy among training energies (per window length when calibrated)."""
        if self._ranks is None:
            raise BundleFormatError(f"bundle {self.name!r} ({self.kind}) has no training energies")
        return self._ranks.percentile(energy, lengths)
