"""Supervised contrastive loss (Khosla et al. 2020) on the classifier's embedding, beside cross entropy.

The novelty head is a k-NN on the unit-length embedding (Sun et al. 2022), and Sun et al. find that
k-NN out-of-distribution detection works best on embeddings trained with this loss: windows of one
class are pulled together and those of different classes pushed apart on the unit sphere, so an unseen
class falls between the clusters instead of inside one. `models.train.train_classifier` adds it to the
cross entropy with `TrainConfig.supcon_weight` (0, the default, trains as before).
"""

from __future__ import annotations

import torch

DEFAULT_TEMPERATURE = 0.1  # Khosla et al.'s setting


def supervised_contrastive_loss(
    embedding: torch.Tensor, labels: torch.Tensor, temperature: float = DEFAULT_TEMPERATURE
) -> torch.Tensor:
    """Mean over anchors (windows with at least one other window of their class in the batch) of
    -mean_p log( exp(z·z_p / τ) / Σ_{a ≠ anchor} exp(z·z_a / τ) ), z the unit-length embeddings.

    embedding: (batch, D); labels: (batch,) class indices. Returns 0 (with a gradient path) when no
    window of the batch has a positive."""
    z = torch.nn.functional.normalize(embedding, dim=1)
    logits = z @ z.T / temperature
    n = len(labels)
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    counts = positives.sum(dim=1)
    anchors = counts > 0
    if not bool(anchors.any()):
        return embedding.sum() * 0.0
    summed = torch.where(positives, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    return -(summed[anchors] / counts[anchors]).mean()
