"""Labels that name only a superclass, as training signal for a class-level classifier.

EROS-1 labels its stars binary / cepheid / rr_lyrae / mira: superclasses (`models.taxonomy`), not the
classes a bundle predicts. A window with such a label ("superclass:RR_Lyrae", `taxonomy.superclass_label`)
adds -log of the summed probability of its superclass's classes to the loss: the likelihood of a label
known only up to a set of classes (the hierarchical or partial-label loss). It moves probability into the
right superclass and leaves the choice among its classes to the class-labelled windows. These windows stay
out of the class weights and the contrastive loss (they have no class to pull together).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from models import contrastive
from models.taxonomy import superclass_of


def member_log_mask(class_names: Sequence[str], markers: Sequence[str]) -> torch.Tensor:
    """(len(markers), K): 0 where the class belongs to the marker's superclass, -inf elsewhere.
    ValueError for a marker whose superclass has none of the classes (nothing could take its mass)."""
    rows = np.array([[superclass_of(c) == superclass_of(m) for c in class_names] for m in markers], bool)
    empty = [m for m, row in zip(markers, rows, strict=True) if not row.any()]
    if empty:
        raise ValueError(f"superclass labels {empty} have no class among {list(class_names)}")
    return torch.as_tensor(np.where(rows, 0.0, -np.inf), dtype=torch.float32)


def superclass_nll(logits: torch.Tensor, log_mask: torch.Tensor) -> torch.Tensor:
    """(n,) -log sum of the softmax over each row's allowed classes (`log_mask` rows, 0 / -inf)."""
    return logits.logsumexp(dim=1) - (logits + log_mask).logsumexp(dim=1)


def mixed_loss(
    logits: torch.Tensor,
    embedding: torch.Tensor,
    y: torch.Tensor,
    class_weight: torch.Tensor,
    log_mask: torch.Tensor,
    superclass_weight: float,
    supcon_weight: float,
    supcon_temperature: float,
) -> torch.Tensor:
    """Mean loss of a batch that mixes class labels (y < K) and superclass labels (y = K + marker index).

    Class-labelled windows: weighted cross entropy (+ `supcon_weight` x the contrastive loss among them);
    superclass-labelled windows: `superclass_weight` x `superclass_nll`. Each part counts by its windows.
    """
    k = logits.shape[1]
    fine = y < k
    n_fine = int(fine.sum())
    total = logits.new_zeros(())
    if n_fine:
        ce = torch.nn.functional.cross_entropy(logits[fine], y[fine], weight=class_weight)
        total = total + n_fine * ce
        if supcon_weight and n_fine > 1:
            supcon = contrastive.supervised_contrastive_loss(embedding[fine], y[fine], supcon_temperature)
            total = total + n_fine * supcon_weight * supcon
    if n_fine < len(y):
        coarse = ~fine
        nll = superclass_nll(logits[coarse], log_mask[y[coarse] - k])
        total = total + superclass_weight * nll.sum()
    return total / len(y)
