"""Deep ensemble of iTCNs: it answers as one iTCN does, through the bundle, the k-NN head and ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.bundle import Bundle, load_bundle, save_bundle
from models.ensemble import (
    ARCH,
    PhaseEnsemble,
    build_ensemble,
    ensemble_hyperparameters,
    from_members,
)
from models.itcn import build_classifier
from models.novelty_fit import fit_knn_head
from models.onnx_export import export_onnx
from models.onnx_serving import OnnxBundle
from tests.unit.test_bundle import synthetic_windows

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = {"hidden": 8, "depth": 4, "kernel": 3, "dropout": 0.0}


def members(n: int = 3, n_classes: int = 4) -> list[torch.nn.Module]:
    """n eval-mode iTCNs with different random weights (as different training seeds give)."""
    nets = []
    for seed in range(n):
        torch.manual_seed(seed)
        nets.append(build_classifier("itcn", n_classes, **SMALL).eval())
    return nets


def inputs(length: int = 50, batch: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(99)
    return torch.randn(batch, 2, length), torch.randn(batch, 3)


def test_logits_are_the_mean_of_the_members_logits():
    nets = members()
    x, aux = inputs()
    with torch.no_grad():
        expected = torch.stack([net(x, aux) for net in nets]).mean(0)
        got = from_members(nets, SMALL, combine="logits")(x, aux)
    torch.testing.assert_close(got, expected)


def test_proba_combine_serves_the_mean_of_the_members_probabilities():
    nets = members()
    x, aux = inputs()
    with torch.no_grad():
        expected = torch.stack([torch.softmax(net(x, aux), -1) for net in nets]).mean(0)
        got = torch.softmax(from_members(nets, SMALL, combine="proba")(x, aux), -1)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("embedding", ["concat-unit", "concat"])
def test_embedding_joins_the_members_embeddings(embedding):
    nets = members()
    x, aux = inputs()
    with torch.no_grad():
        joined, logits = from_members(nets, SMALL, embedding=embedding).embed(x, aux)
        parts = [net.embed(x, aux)[0] for net in nets]
    assert joined.shape == (5, 3 * SMALL["hidden"]) and logits.shape == (5, 4)
    if embedding == "concat-unit":
        parts = [p / p.norm(dim=-1, keepdim=True) for p in parts]
    torch.testing.assert_close(joined, torch.cat(parts, -1))


def test_the_ensemble_is_invariant_under_every_cyclic_shift():
    ensemble = from_members(members(), SMALL)
    x, aux = inputs(length=40, batch=2)
    shifted = torch.cat([torch.roll(x, s, dims=-1) for s in range(40)])
    with torch.no_grad():
        reference = ensemble(x, aux)
        out = ensemble(shifted, aux.repeat(40, 1)).reshape(40, 2, -1)
    torch.testing.assert_close(out, reference.expand_as(out), rtol=1e-5, atol=1e-5)


def test_from_members_copies_the_weights_and_leaves_the_members_alone():
    nets = members(2)
    ensemble = from_members(nets, SMALL)
    with torch.no_grad():
        ensemble.members[0].head[-1].bias.add_(1.0)
    assert not torch.equal(ensemble.members[0].head[-1].bias, nets[0].head[-1].bias)


def test_bad_ensembles_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="at least one member"):
        PhaseEnsemble([])
    with pytest.raises(ValueError, match="unknown combine"):
        PhaseEnsemble(members(1), combine="vote")
    with pytest.raises(ValueError, match="number of classes"):
        PhaseEnsemble([*members(1, 3), *members(1, 4)])
    with pytest.raises(ValueError, match="2 members but 3 seeds"):
        build_ensemble(4, 2, seeds=[0, 1, 2], **SMALL)


def ensemble_bundle(n_classes: int = 3) -> Bundle:
    classes = ["sine", "sawtooth", "eclipse"][:n_classes]
    nets = members(3, n_classes)
    hp = ensemble_hyperparameters(SMALL, seeds=[0, 1, 2])
    metadata = {"arch": ARCH, "hyperparameters": hp}
    window = {"length": 200, "min_length": 50, "buckets": [50, 100, 150, 200], "min_remainder": 50}
    model = from_members(nets, SMALL)
    return Bundle("classifier", "toy-ensemble", "0", classes, window, {}, metadata, model)


def test_an_ensemble_bundle_round_trips_and_serves_through_onnx_runtime(tmp_path):
    """Save, load (rebuilt from its metadata), k-NN head, ONNX export: every engine gives the same answers."""
    lengths = np.repeat(np.array([50, 100, 150, 200]), 6)
    windows = synthetic_windows(len(lengths), lengths=lengths, seed=4)
    bundle = ensemble_bundle()
    bundle.novelty_head = fit_knn_head(bundle, windows, windows, k=3)
    path = save_bundle(bundle, tmp_path / "ens")
    loaded = load_bundle(path)
    assert isinstance(loaded.model, PhaseEnsemble) and len(loaded.model.members) == 3
    reference = bundle.predict(windows)
    again = loaded.predict(windows)
    np.testing.assert_allclose(again.proba, reference.proba, atol=1e-6)
    np.testing.assert_allclose(again.novelty_score, reference.novelty_score, atol=1e-6)
    section = export_onnx(loaded, path)
    assert section["lengths"] == [50, 100, 150, 200]
    served = OnnxBundle(path).predict(windows)
    np.testing.assert_allclose(served.proba, reference.proba, atol=1e-5)
    # untrained members embed every window nearly alike: k-NN distances ~0.004, where the float32
    # cosine's ~1e-7 error moves sqrt(2 - 2 cos) by a few 1e-5
    np.testing.assert_allclose(served.novelty_score, reference.novelty_score, atol=1e-4)
    assert loaded.novelty_head.bank.shape[1] == 3 * SMALL["hidden"]


def test_mixed_length_windows_are_grouped_for_the_ensemble_too():
    bundle = ensemble_bundle()
    windows = synthetic_windows(8, lengths=np.array([50, 200] * 4), seed=2)
    together = bundle.predict(windows).proba
    one_by_one = np.concatenate([bundle.predict(windows.subset(np.arange(8) == i)).proba for i in range(8)])
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)
