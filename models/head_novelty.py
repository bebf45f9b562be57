"""A classifier bundle's k-NN novelty head, served as the novelty model beside another classifier.

The network that classifies best need not be the one whose embedding finds the unseen best: a
contrastive-trained iTCN classifies young objects better, while its head's thresholds, drawn from the
validation split, flag more known objects than the cross-entropy network's. `HeadNovelty` lets one bundle
classify and another bundle's network + head score novelty, through the interface an AE-GMM novelty bundle
has (`kind`, `predict(...).energy`, `energy_percentile`, `novelty_thresholds`, window and period settings),
so the plugin and `varstream evaluate` take either. The cost is one more network pass per window.
"""

from __future__ import annotations

import numpy as np

from models.bundle_format import BundleFormatError, Prediction
from models.windows import Windows


class HeadNovelty:
    """Novelty from a classifier bundle (torch `Bundle` or `OnnxBundle`) loaded with its novelty head.

    `energy` is the head's window score (k-NN distance, joined with the period–amplitude plane when the
    head has one), ranked by the head's per-length calibration tables."""

    kind = "novelty"

    def __init__(self, bundle) -> None:
        if bundle.kind != "classifier" or getattr(bundle, "novelty_head", None) is None:
            raise BundleFormatError(
                f"bundle {bundle.name!r} ({bundle.kind}) has no novelty head to serve as the novelty model"
            )
        self.bundle = bundle
        self.head = bundle.novelty_head

    def __repr__(self) -> str:
        return f"HeadNovelty({self.bundle!r}, head={self.head.name!r})"

    @property
    def name(self) -> str:
        return self.head.name

    @property
    def version(self) -> str:
        return self.head.version

    @property
    def window(self) -> dict:
        return self.bundle.window

    @property
    def period_search(self) -> dict:
        return self.bundle.period_search

    @property
    def novelty_thresholds(self) -> dict[str, float]:
        """Head scores at the 80th and 95th percentile of its calibration windows (all lengths)."""
        return self.head.thresholds

    def predict(self, windows: Windows, device: str = "cpu", **options) -> Prediction:
        """The network's probabilities, and the head's score of every window as `energy`."""
        prediction = self.bundle.predict(windows, device, **options)
        return Prediction(proba=prediction.proba, energy=prediction.novelty_score)

    def energy_percentile(self, energy: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """Percentile (0–100) of head scores among the head's calibration windows of each length."""
        return self.bundle.novelty_percentile(energy, lengths)


def as_novelty_model(bundle):
    """A loaded bundle as a novelty model: a novelty (AE-GMM) bundle as it is, a classifier bundle with a
    novelty head wrapped in `HeadNovelty`; anything else is refused."""
    if bundle.kind == "novelty":
        return bundle
    return HeadNovelty(bundle)
