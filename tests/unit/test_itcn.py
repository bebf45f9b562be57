"""The iTCN's defining property: its logits do not depend on the phase the fold starts at."""

from __future__ import annotations

import pytest
import torch

from models.itcn import (
    ARCHS,
    DEFAULT_HYPERPARAMETERS,
    SymmetryPad1d,
    build_classifier,
    receptive_field,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def logits_under_every_shift(arch: str, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits of the input, logits of every cyclic shift (length, batch, K)) of a random, eval-mode net."""
    torch.manual_seed(0)
    model = build_classifier(arch, n_classes=5).eval()
    x, aux = torch.randn(3, 2, length), torch.randn(3, 3)
    shifted = torch.cat([torch.roll(x, s, dims=-1) for s in range(length)])
    with torch.no_grad():
        return model(x, aux), model(shifted, aux.repeat(length, 1)).reshape(length, 3, -1)


@pytest.mark.parametrize("length", [200, 50, 37])
def test_itcn_logits_are_invariant_under_every_cyclic_shift(length):
    reference, shifted = logits_under_every_shift("itcn", length)
    torch.testing.assert_close(shifted, reference.expand_as(shifted), rtol=1e-5, atol=1e-5)


def test_tcn_logits_are_not_invariant():
    reference, shifted = logits_under_every_shift("tcn", 200)
    assert (shifted - reference).abs().amax() > 1e-3


def test_iresnet_is_invariant_to_shifts_by_its_pooling_stride_product_only():
    reference, shifted = logits_under_every_shift("iresnet", 128)
    stride = 2 ** DEFAULT_HYPERPARAMETERS["depth"]
    torch.testing.assert_close(shifted[stride], reference, rtol=1e-5, atol=1e-5)
    assert (shifted[1] - reference).abs().amax() > 1e-4


def test_default_receptive_field_covers_the_window():
    hp = DEFAULT_HYPERPARAMETERS
    assert receptive_field(hp["kernel"], hp["depth"]) >= 200
    assert receptive_field(3, 6) == 2 * (2**7 - 2)


def test_symmetry_pad_wraps_even_when_longer_than_the_input():
    x = torch.arange(3.0).reshape(1, 1, 3)
    torch.testing.assert_close(SymmetryPad1d(7)(x)[0, 0], torch.tensor([2.0, 0, 1, 2, 0, 1, 2, 0, 1, 2]))


@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_maps_any_length_to_class_logits(arch):
    model = build_classifier(arch, n_classes=4, hidden=8).eval()
    for length in (1, 50, 200):
        assert model(torch.randn(2, 2, length), torch.randn(2, 3)).shape == (2, 4)


def test_unknown_arch_is_named():
    with pytest.raises(ValueError, match="'lstm'"):
        build_classifier("lstm", 3)


def test_training_subsample_equals_folding_the_kept_points():
    """The young-object augmentation must build the window `broker.folding` would build from those points
    (up to a cyclic shift: the fold's phase origin is the first kept time)."""
    import numpy as np

    from broker.folding import fold_window
    from models.train import subsample_window

    rng = np.random.default_rng(4)
    mjd = np.sort(rng.uniform(0, 500, 200))
    mag = 15 + 0.4 * np.sin(2 * np.pi * mjd / 0.61) + rng.normal(0, 0.05, 200)
    magerr = rng.uniform(0.02, 0.08, 200)
    steps, aux = fold_window(mjd, mag, magerr, 0.61)
    x = np.zeros((200, 3), np.float32)
    x[:] = steps
    got, got_aux = subsample_window(x, aux, 200, 50, np.random.default_rng(9))
    # Recover which points were kept: the same generator call picks the same phase-order indices.
    chosen = np.sort(np.random.default_rng(9).choice(200, 50, replace=False))
    phase_order = np.argsort(((mjd - mjd[0]) / 0.61) % 1.0, kind="stable")
    kept = np.sort(phase_order[chosen])  # back to time order
    want, want_aux = fold_window(mjd[kept], mag[kept], magerr[kept], 0.61)
    np.testing.assert_allclose(got_aux, want_aux, rtol=1e-5)
    shift = int(np.argmin([np.abs(np.roll(got[:, 1], s) - want[:, 1]).sum() for s in range(50)]))
    np.testing.assert_allclose(np.roll(got, shift, axis=0), want, atol=1e-4)
