"""Inference runtime: loads the classifier and novelty bundles and answers for a batch of objects.

It owns the engine and device choice and the consistency check between the two bundles (they must have
been trained on windows built the same way, since the plugin builds windows once per object). It speaks
numpy, so the Kafka side never sees a tensor.

Engines: "onnx" serves the bundles' ONNX export through ONNX Runtime (the plugin's own install); "torch"
serves the torch weights (needs the [train] extra). "auto" picks ONNX Runtime on CPU (measured faster
there, see benchmarks/inference_bench.py), ONNX Runtime on CUDA when onnxruntime-gpu is present, else torch;
it falls back to the other engine when the first is not installed or a bundle lacks its ONNX export.

Novelty: a classifier bundle that carries a novelty head (`models.novelty_head`, k-NN distance of the
iTCN embedding) answers it in the same pass, and is the default when `inference.novelty_bundle` is empty;
otherwise (or with a bundle path) the AE-GMM novelty bundle does. The annotation's novelty model name and
version say which one ran.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from broker.config import InferenceConfig
from broker.errors import BundleError
from broker.folding import WindowConfig
from broker.period import PeriodSearchConfig
from models.windows import Windows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Classification:
    """One object's answer: object-level probabilities are the mean over its windows."""

    proba: np.ndarray  # (K,) over InferenceRuntime.class_names
    windows_used: int
    novelty_energy: float | None = None
    novelty_percentile: float | None = None  # of the energy among the novelty model's calibration scores
    is_novel: bool | None = None

    @property
    def predicted_index(self) -> int:
        return int(np.argmax(self.proba))


CPU_ENGINE = "onnx"  # the engine "auto" serves with on CPU: the faster one in benchmarks/inference_bench.py
TRAIN_EXTRA_HINT = "pip install 'varstream[train]'"


def installed(module: str) -> bool:
    """Whether `module` can be imported, found without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def onnx_cuda_available() -> bool:
    if not installed("onnxruntime"):
        return False
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def nvidia_driver_present() -> bool:
    """A cheap look for an NVIDIA driver, so "auto" does not import torch (seconds) on a CPU-only host."""
    return Path("/proc/driver/nvidia/version").exists()


def torch_cuda_available() -> bool:
    if not installed("torch") or not nvidia_driver_present():
        return False
    import torch

    return torch.cuda.is_available()


def resolve_device(requested: str) -> str:
    """ "auto" → cuda when torch or onnxruntime-gpu sees a device, else cpu; "cuda…" is checked."""
    cuda = onnx_cuda_available() or torch_cuda_available()
    if requested == "auto":
        return "cuda" if cuda else "cpu"
    if requested.startswith("cuda") and not cuda:
        raise BundleError(f"inference.device = {requested!r} but no CUDA device is available")
    return requested


def resolve_engine(requested: str, device: str, has_onnx: bool) -> str:
    """The engine that serves: "onnx" or "torch" (see the module docstring for what "auto" picks)."""
    have_torch, have_ort = installed("torch"), installed("onnxruntime")
    if requested == "torch":
        if not have_torch:
            raise BundleError(f"inference.engine = 'torch' needs torch: {TRAIN_EXTRA_HINT}")
        return "torch"
    if requested == "onnx":
        if not have_ort:
            raise BundleError("inference.engine = 'onnx' needs onnxruntime: pip install onnxruntime")
        if not has_onnx:
            raise BundleError(
                "inference.engine = 'onnx' but a bundle has no ONNX export: varstream export-onnx"
            )
        return "onnx"
    if requested != "auto":
        raise BundleError(f"inference.engine must be one of auto, onnx, torch; got {requested!r}")
    onnx_ok = have_ort and has_onnx and (not device.startswith("cuda") or onnx_cuda_available())
    first = CPU_ENGINE if device == "cpu" else "onnx"
    if first == "onnx" and onnx_ok:
        return "onnx"
    if have_torch:
        return "torch"
    if onnx_ok:
        return "onnx"
    raise BundleError(
        f"no inference engine for device {device!r}: the bundles lack an ONNX export (varstream export-onnx) "
        f"or onnxruntime{'-gpu' if device.startswith('cuda') else ''} is missing, and torch is not installed "
        f"({TRAIN_EXTRA_HINT})"
    )


def _has_section(path: Path, section: str) -> bool:
    """Whether the bundle folder's metadata.json has `section` (False when it cannot be read: the load
    that follows names the problem)."""
    from models.bundle_format import BundleFormatError, read_document

    try:
        return bool(read_document(path).get(section))
    except BundleFormatError:
        return False


def _config_from(cls: type, values: dict, what: str):
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise BundleError(f"bundle {what} settings {sorted(unknown)} are unknown to this varstream version")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def differing_settings(a, b) -> list[str]:
    """Which of "window" and "period_search" two bundles were built with differently, compared as
    configurations: a setting one bundle records at its default value and the other leaves out (a bundle
    written before the setting existed) is the same setting."""
    return [
        attr
        for attr, cls in (("window", WindowConfig), ("period_search", PeriodSearchConfig))
        if _config_from(cls, getattr(a, attr), attr) != _config_from(cls, getattr(b, attr), attr)
    ]


def require_same_settings(classifier, novelty) -> None:
    """Refuse (BundleError) a classifier and novelty model built with different window or period-search
    settings: the novelty model would score windows folded unlike its own."""
    differing = differing_settings(classifier, novelty)
    if differing:
        attr = differing[0]
        raise BundleError(
            f"the classifier and novelty bundles were trained with different {attr} settings: "
            f"{getattr(classifier, attr)} vs {getattr(novelty, attr)}"
        )


class InferenceRuntime:
    """Both models, on one device, with the period-search and window settings they were trained with."""

    def __init__(self, config: InferenceConfig) -> None:
        from models.bundle_format import DEFAULT_CLASSIFIER_BUNDLE, DEFAULT_NOVELTY_BUNDLE, BundleFormatError
        from models.head_novelty import as_novelty_model
        from models.novelty_head import SECTION
        from models.onnx_serving import has_onnx_export

        self.config = config
        self.device = resolve_device(config.device)
        paths = [Path(config.classifier_bundle or DEFAULT_CLASSIFIER_BUNDLE)]
        # The classifier's own novelty head serves by default; an explicit novelty bundle overrides it.
        self.uses_head = config.novelty_bundle == "" and _has_section(paths[0], SECTION)
        if config.novelty_bundle.lower() != "none" and not self.uses_head:
            paths.append(Path(config.novelty_bundle or DEFAULT_NOVELTY_BUNDLE))
        self.engine = resolve_engine(config.engine, self.device, all(has_onnx_export(p) for p in paths))
        # On an accelerator, batches are padded to a few fixed sizes so each shape is planned once.
        self.pad_batches = self.device.startswith("cuda")
        try:
            # the classifier's head is loaded only where it answers: otherwise it would score every window;
            # a classifier bundle named as the novelty bundle answers with its head (`HeadNovelty`)
            loaded = [
                self._load(path, with_novelty_head=self.uses_head or k > 0) for k, path in enumerate(paths)
            ]
            novelty = as_novelty_model(loaded[1]) if len(loaded) > 1 else None
        except BundleFormatError as err:
            raise BundleError(str(err)) from err
        self.classifier = loaded[0]
        if self.classifier.kind != "classifier":
            raise BundleError(f"inference.classifier_bundle is a {self.classifier.kind!r} bundle")
        self.novelty = self.classifier.novelty_head if self.uses_head else None
        if novelty is not None:
            require_same_settings(self.classifier, novelty)
            self.novelty = novelty
        self.period_config: PeriodSearchConfig = _config_from(
            PeriodSearchConfig, self.classifier.period_search, "period_search"
        )
        self.window_config: WindowConfig = _config_from(WindowConfig, self.classifier.window, "window")
        log.info("models loaded: %s on %s with the %s engine", self.info, self.device, self.engine)

    def _load(self, path: Path, with_novelty_head: bool):
        """A bundle served by the chosen engine; it stays resident on the device between batches."""
        if self.engine == "onnx":
            from models.onnx_serving import OnnxBundle

            threads = self.config.torch_threads
            return OnnxBundle(path, device=self.device, threads=threads, with_novelty_head=with_novelty_head)
        import torch

        from models.bundle import load_bundle

        if self.config.torch_threads > 0:
            torch.set_num_threads(self.config.torch_threads)
        return load_bundle(path, with_novelty_head=with_novelty_head)

    @property
    def class_names(self) -> list[str]:
        return list(self.classifier.class_names)

    @property
    def info(self) -> dict[str, str]:
        info = {
            "classifier_name": self.classifier.name,
            "classifier_version": self.classifier.version,
            "device": self.device,
        }
        if self.novelty is not None:
            info["novelty_name"] = self.novelty.name
            info["novelty_version"] = self.novelty.version
        return info

    def classify(self, per_object: list[Windows]) -> list[Classification]:
        """Answer for each object from its windows (each entry must hold at least one window)."""
        if not per_object:
            return []
        counts = np.array([len(w) for w in per_object])
        if (counts == 0).any():
            raise ValueError("every object passed to classify() needs at least one window")
        windows = Windows.concatenate(per_object)
        options = dict(
            device=self.device, batch_size=self.config.max_batch_windows, pad_batches=self.pad_batches
        )
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        prediction = self.classifier.predict(windows, **options)
        proba = np.add.reduceat(prediction.proba, starts, axis=0)
        proba /= counts[:, None]
        if self.novelty is None:
            return [Classification(proba=p, windows_used=int(c)) for p, c in zip(proba, counts, strict=True)]
        # One vectorised ranking for the whole batch: each object's mean score among calibration windows
        # of its length (an object's windows share one length).
        lengths = np.array([int(w.lengths.max()) for w in per_object])
        if self.uses_head:
            energy = np.add.reduceat(prediction.novelty_score, starts) / counts
            percentile = self.classifier.novelty_percentile(energy, lengths)
        else:
            energy = np.add.reduceat(self.novelty.predict(windows, **options).energy, starts) / counts
            percentile = self.novelty.energy_percentile(energy, lengths)
        novel = percentile > self.config.novelty_percentile
        return [
            Classification(
                proba=proba[i],
                windows_used=int(counts[i]),
                novelty_energy=float(energy[i]),
                novelty_percentile=float(percentile[i]),
                is_novel=bool(novel[i]),
            )
            for i in range(len(per_object))
        ]
