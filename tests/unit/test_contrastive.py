"""The supervised contrastive loss (`models.contrastive`) and its use beside cross entropy in training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from broker.cli import main as varstream
from models.bundle import load_bundle
from models.contrastive import supervised_contrastive_loss
from tests.unit.test_train_ensemble import train_argv
from tests.unit.test_train_period_settings import (  # noqa: F401 (fixtures)
    restore_torch_threads,
    two_shape_csv,
)


def test_loss_is_the_mean_over_anchors_of_the_positives_log_share():
    z = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 2.0]])  # the last one is scaled: only directions count
    labels = torch.tensor([0, 0, 1])
    tau = 0.5
    unit = z / z.norm(dim=1, keepdim=True)
    sim = (unit @ unit.T / tau).numpy()

    def log_share(anchor: int, positive: int) -> float:
        others = [j for j in range(3) if j != anchor]
        return sim[anchor, positive] - math.log(sum(math.exp(sim[anchor, j]) for j in others))

    # anchors 0 and 1 have one positive each; anchor 2 has none and is left out
    expected = -(log_share(0, 1) + log_share(1, 0)) / 2
    assert supervised_contrastive_loss(z, labels, tau).item() == pytest.approx(expected, rel=1e-6)


def test_clustered_classes_cost_less_than_mixed_ones():
    rng = np.random.default_rng(0)
    labels = torch.tensor([0] * 8 + [1] * 8)
    centres = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    clustered = torch.tensor(centres[labels.numpy()] + 0.05 * rng.normal(size=(16, 3)), dtype=torch.float32)
    mixed = torch.tensor(rng.normal(size=(16, 3)), dtype=torch.float32)
    assert supervised_contrastive_loss(clustered, labels) < supervised_contrastive_loss(mixed, labels) - 1.0


def test_a_batch_without_positives_gives_zero_and_still_backpropagates():
    z = torch.randn(3, 4, requires_grad=True)
    loss = supervised_contrastive_loss(z, torch.tensor([0, 1, 2]))
    assert loss.item() == 0.0
    loss.backward()
    assert z.grad is not None and torch.all(z.grad == 0)


def test_training_with_the_contrastive_term_records_its_weight(
    two_shape_csv,  # noqa: F811
    tmp_path,
    restore_torch_threads,  # noqa: F811
):
    plain, mixed = tmp_path / "plain", tmp_path / "supcon"
    assert varstream(train_argv(two_shape_csv, plain)) == 0
    assert varstream(train_argv(two_shape_csv, mixed, "--supcon-weight", "0.5")) == 0
    records = [load_bundle(b).metadata["training"] for b in (plain, mixed)]
    assert [r["supcon_weight"] for r in records] == [0.0, 0.5]
    assert records[0]["supcon_temperature"] == records[1]["supcon_temperature"] == 0.1
    # same seed, same batches: the extra term changes what is learnt (the training loss differs)
    assert records[0]["history"][0]["train_loss"] != records[1]["history"][0]["train_loss"]
