"""Inference runtime: loads the classifier and novelty bundles and answers for a batch of objects.

It owns the device choice and the consistency check between the two bundles (they must have been trained
on windows built the same way, since the plugin builds windows once per object). It speaks numpy, so the
Kafka side never sees a tensor.
"""

from __future__ import annotations

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
    novelty_percentile: float | None = None  # of the energy among the novelty model's training energies
    is_novel: bool | None = None

    @property
    def predicted_index(self) -> int:
        return int(np.argmax(self.proba))


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise BundleError(f"inference.device = {requested!r} but no CUDA device is available")
    return requested


def _config_from(cls: type, values: dict, what: str):
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise BundleError(f"bundle {what} settings {sorted(unknown)} are unknown to this varstream version")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


class InferenceRuntime:
    """Both models, on one device, with the period-search and window settings they were trained with."""

    def __init__(self, config: InferenceConfig) -> None:
        from models.bundle import DEFAULT_CLASSIFIER_BUNDLE, DEFAULT_NOVELTY_BUNDLE, load_bundle

        self.config = config
        if config.torch_threads > 0:
            import torch

            torch.set_num_threads(config.torch_threads)
        self.device = resolve_device(config.device)
        self.classifier = load_bundle(Path(config.classifier_bundle or DEFAULT_CLASSIFIER_BUNDLE))
        if self.classifier.kind != "classifier":
            raise BundleError(f"inference.classifier_bundle is a {self.classifier.kind!r} bundle")
        self.novelty = None
        if config.novelty_bundle.lower() != "none":
            self.novelty = load_bundle(Path(config.novelty_bundle or DEFAULT_NOVELTY_BUNDLE))
            if self.novelty.kind != "novelty":
                raise BundleError(f"inference.novelty_bundle is a {self.novelty.kind!r} bundle")
            for attr in ("window", "period_search"):
                if getattr(self.novelty, attr) != getattr(self.classifier, attr):
                    raise BundleError(
                        f"the classifier and novelty bundles were trained with different {attr} settings: "
                        f"{getattr(self.classifier, attr)} vs {getattr(self.novelty, attr)}"
                    )
        self.period_config: PeriodSearchConfig = _config_from(
            PeriodSearchConfig, self.classifier.period_search, "period_search"
        )
        self.window_config: WindowConfig = _config_from(WindowConfig, self.classifier.window, "window")
        log.info("models loaded: %s on %s", self.info, self.device)

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
        bs = self.config.max_batch_windows
        proba = self.classifier.predict(windows, device=self.device, batch_size=bs).proba
        energy = percentile = None
        if self.novelty is not None:
            energy = self.novelty.predict(windows, device=self.device, batch_size=bs).energy
        bounds = np.concatenate([[0], np.cumsum(counts)])
        out = []
        for i in range(len(per_object)):
            sl = slice(bounds[i], bounds[i + 1])
            kwargs = {}
            if energy is not None:
                e = float(np.mean(energy[sl]))
                length = int(per_object[i].lengths.max())  # an object's windows share one length
                percentile = float(self.novelty.energy_percentile(np.array([e]), np.array([length]))[0])
                kwargs = dict(
                    novelty_energy=e,
                    novelty_percentile=percentile,
                    is_novel=bool(percentile > self.config.novelty_percentile),
                )
            out.append(Classification(proba=proba[sl].mean(axis=0), windows_used=int(counts[i]), **kwargs))
        return out
