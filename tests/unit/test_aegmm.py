"""AE-GMM: the mixture maths against scipy, and energies that rise for light curves unlike the training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from models import aegmm
from models.bundle import run_model
from models.train import TrainConfig, train_aegmm
from models.windows import Windows
from tests.unit.test_bundle import synthetic_windows

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_energy_matches_scipy_mixture_density():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(7, 3))
    phi = np.array([0.3, 0.7])
    mu = rng.normal(size=(2, 3))
    a = rng.normal(size=(2, 3, 3))
    cov = a @ a.transpose(0, 2, 1) + np.eye(3)
    density = sum(
        phi[k] * multivariate_normal(mu[k], cov[k] + aegmm.COVARIANCE_JITTER * np.eye(3)).pdf(z)
        for k in range(2)
    )
    got = aegmm.energy(*(torch.as_tensor(t) for t in (z, phi, mu, cov)))
    np.testing.assert_allclose(got.numpy(), -np.log(density), rtol=1e-9)


def test_gmm_parameters_are_membership_weighted_moments():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(50, 2))
    gamma = rng.dirichlet([1, 1, 1], size=50)
    phi, mu, cov = (t.numpy() for t in aegmm.gmm_parameters(torch.as_tensor(z), torch.as_tensor(gamma)))
    np.testing.assert_allclose(phi, gamma.mean(axis=0))
    for k in range(3):
        np.testing.assert_allclose(mu[k], np.average(z, axis=0, weights=gamma[:, k]))
        np.testing.assert_allclose(cov[k], np.cov(z.T, aweights=gamma[:, k], bias=True), atol=1e-12)


def test_reconstruction_loss_weights_by_inverse_sigma():
    x = torch.zeros(1, 2, 3)
    x[0, :, 1] = torch.tensor([1.0, 1.0])
    x[0, :, 2] = torch.tensor([0.1, 0.3])  # weights 10 and 3.33 → normalised 1.5 and 0.5
    reconstruction = torch.tensor([[0.0, 1.0]])  # only the precise point is wrong
    assert aegmm.reconstruction_loss(x, reconstruction).item() == pytest.approx(1.5 / 2)


def out_of_distribution(n: int, seed: int) -> Windows:
    """Noise folded at long periods: nothing like the periodic shapes of the training windows."""
    rng = np.random.default_rng(seed)
    windows = synthetic_windows(n, seed=seed)
    windows.x[:, :, 1] = rng.standard_normal((n, windows.window_length)).astype(np.float32)
    windows.aux[:, 1] = 0.05
    windows.aux[:, 2] = 2.5
    return windows


def test_energy_is_finite_and_higher_out_of_distribution_after_a_tiny_training():
    classes = ["sawtooth", "sine"]
    train = synthetic_windows(160, classes=classes, seed=1)
    val = synthetic_windows(40, classes=classes, seed=2)
    config = TrainConfig(epochs=2, batch_size=32, progress=False, crop_probability=0.0)
    result = train_aegmm(train, val, classes, {"hidden": 16, "layers": 1, "dropout": 0.0}, config)
    seen = run_model(result.model, "novelty", val, "cpu", 256).energy
    unseen = run_model(result.model, "novelty", out_of_distribution(40, 3), "cpu", 256).energy
    assert np.isfinite(seen).all() and np.isfinite(unseen).all() and np.isfinite(result.train_energies).all()
    assert np.median(unseen) > np.percentile(seen, 95)
    bundle = result.to_bundle("tiny", "0", {}, {})
    assert np.mean(unseen > bundle.novelty_thresholds["p95"]) > 0.9
    assert np.mean(seen > bundle.novelty_thresholds["p95"]) < 0.3
