"""Bundle format: save/load round trip, mixed-length prediction, energy percentiles, the shipped bundles."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from models import bundle as bundle_mod
from models.bundle import (
    AEGMM_BUNDLE,
    DEFAULT_CLASSIFIER_BUNDLE,
    DEFAULT_NOVELTY_BUNDLE,
    BundleFormatError,
    load_bundle,
    make_untrained_bundles,
    save_bundle,
)
from models.windows import Windows

SHAPES = {
    "sine": lambda phase: np.sin(2 * np.pi * phase),
    "sawtooth": lambda phase: 1.0 - 2.0 * ((phase + 0.3) % 1.0),
    "eclipse": lambda phase: 2.0 * np.exp(-(((phase - 0.5) / 0.04) ** 2)),
}


def synthetic_windows(
    n: int, length: int = 200, classes=tuple(SHAPES), seed: int = 0, lengths=None
) -> Windows:
    """Folded windows of simple periodic shapes, standardised as `Windows` says, zero past lengths."""
    rng = np.random.default_rng(seed)
    if lengths is None:
        lengths = np.full(n, length)
    x = np.zeros((n, length, 3), np.float32)
    labels = rng.choice(list(classes), n)
    aux = np.zeros((n, 3), np.float32)
    for i, (label, k) in enumerate(zip(labels, lengths, strict=True)):
        phase = np.sort(rng.uniform(0, 1, k))
        err = rng.uniform(0.02, 0.1, k)
        mag = 15 + 0.5 * SHAPES[label](phase) + rng.normal(0, err)
        std = mag.std()
        x[i, :k, 0] = np.diff(phase, prepend=phase[-1] - 1.0)
        x[i, :k, 1] = (mag - mag.mean()) / std
        x[i, :k, 2] = err / std
        aux[i] = (mag.mean(), std, np.log10(rng.uniform(0.3, 1.0)))
    object_ids = np.array([f"obj{i // 2}" for i in range(n)], dtype=object)
    return Windows(x, aux, np.asarray(lengths, np.int32), object_ids, labels.astype(object))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    return make_untrained_bundles(tmp_path_factory.mktemp("bundles"), class_names=["a", "b", "c"])


def mixed_windows(n: int = 60, seed: int = 3) -> Windows:
    lengths = np.random.default_rng(seed).choice([50, 100, 150, 200], n)
    return synthetic_windows(n, lengths=lengths, seed=seed)


@pytest.mark.parametrize("which", [0, 1])
def test_save_load_round_trip_gives_identical_predictions(untrained, tmp_path, which):
    original = load_bundle(untrained[which])
    copy = load_bundle(save_bundle(original, tmp_path / "copy"))
    windows = mixed_windows()
    a, b = original.predict(windows), copy.predict(windows)
    assert a.proba.dtype == np.float64 and a.proba.shape == (len(windows), 3)
    np.testing.assert_array_equal(a.proba, b.proba)
    if original.kind == "novelty":
        np.testing.assert_array_equal(a.energy, b.energy)
        assert copy.novelty_thresholds == original.novelty_thresholds
    else:
        assert a.energy is None
    assert (copy.kind, copy.class_names, copy.window) == (
        original.kind,
        original.class_names,
        original.window,
    )


def test_weights_load_with_weights_only(untrained):
    state = torch.load(untrained[0] / "weights.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


@pytest.mark.parametrize("which", [0, 1])
def test_predict_groups_mixed_lengths_like_one_length_at_a_time(untrained, which):
    bundle = load_bundle(untrained[which])
    windows = mixed_windows()
    together = bundle.predict(windows, batch_size=7)
    for length in (50, 100, 150, 200):
        index = np.flatnonzero(windows.lengths == length)
        alone = bundle.predict(windows.subset(index))
        np.testing.assert_allclose(together.proba[index], alone.proba, rtol=1e-5, atol=1e-6)
        if bundle.kind == "novelty":
            np.testing.assert_allclose(together.energy[index], alone.energy, rtol=1e-5, atol=1e-4)


def test_padding_never_reaches_the_network(untrained):
    """Garbage beyond `lengths` must not change anything: the network sees only the real steps."""
    bundle = load_bundle(untrained[0])
    windows = mixed_windows()
    dirty = windows.subset(np.arange(len(windows)))
    for i, k in enumerate(dirty.lengths):
        dirty.x[i, k:] = 99.0
    np.testing.assert_array_equal(bundle.predict(windows).proba, bundle.predict(dirty).proba)


def test_energy_percentile_matches_stored_quantiles(untrained):
    bundle = load_bundle(untrained[1])
    q = bundle.energy_quantiles
    assert len(q) == bundle_mod.N_ENERGY_QUANTILES
    percentile = bundle.energy_percentile(
        np.array([q[0] - 1, q[500], q[-1] + 1, bundle.novelty_thresholds["p95"]])
    )
    np.testing.assert_allclose(percentile, [0.0, 50.0, 100.0, 95.0], atol=0.15)


def test_bad_bundles_raise_naming_the_problem(untrained, tmp_path):
    with pytest.raises(BundleFormatError, match=r"missing metadata\.json"):
        load_bundle(tmp_path)
    broken = save_bundle(load_bundle(untrained[0]), tmp_path / "broken")
    meta = json.loads((broken / "metadata.json").read_text())
    meta["class_names"] = meta["class_names"][:2]
    (broken / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(BundleFormatError, match="weights do not fit"):
        load_bundle(broken)


def test_predict_rejects_lengths_outside_the_window(untrained):
    windows = mixed_windows(4)
    windows.lengths[0] = 0
    with pytest.raises(ValueError, match="window lengths"):
        load_bundle(untrained[0]).predict(windows)


def test_shipped_default_bundles_load_and_are_small():
    """The served pair (the contrastive-trained classifier; crts-itcn's network and k-NN head for novelty) and
    the AE-GMM share classes, window and period settings; each is under 2 MB."""
    classifier, novelty = load_bundle(DEFAULT_CLASSIFIER_BUNDLE), load_bundle(DEFAULT_NOVELTY_BUNDLE)
    aegmm = load_bundle(AEGMM_BUNDLE)
    assert (classifier.kind, novelty.kind, aegmm.kind) == ("classifier", "classifier", "novelty")
    assert classifier.novelty_head is None and novelty.novelty_head is not None  # whose head is served
    for other in (novelty, aegmm):
        assert classifier.class_names == other.class_names
        assert classifier.window == other.window and classifier.period_search == other.period_search
    assert set(aegmm.novelty_thresholds) == set(novelty.novelty_head.thresholds) == {"p80", "p95"}
    for path in (DEFAULT_CLASSIFIER_BUNDLE, DEFAULT_NOVELTY_BUNDLE, AEGMM_BUNDLE):
        assert sum(f.stat().st_size for f in path.iterdir()) < 2_000_000


def test_energy_percentile_ranks_each_length_among_its_own_training_windows():
    """A short window's higher energy is ordinary among short training windows, not novel."""
    bundle = load_bundle(AEGMM_BUNDLE)
    tables = bundle.energy_quantiles_by_length
    assert sorted(tables) == [50, 100, 150, 200]
    median_50 = float(np.median(tables[50]))
    assert median_50 > float(np.median(tables[200]))  # short windows do score higher energies
    assert bundle.energy_percentile([median_50], [50])[0] == pytest.approx(50, abs=1)
    assert bundle.energy_percentile([median_50], [200])[0] > 80  # ranked against full windows: "novel"
    assert bundle.energy_percentile([median_50], [60])[0] == pytest.approx(50, abs=1)  # nearest bucket below


def test_shipped_bundles_record_what_they_trained_and_tuned_on():
    from models.bundle import BUNDLES_DIR, METADATA_FILE, seen_ids

    for name in ("crts-itcn-supcon", "crts-itcn", "crts-aegmm"):
        metadata = json.loads((BUNDLES_DIR / name / METADATA_FILE).read_text())["metadata"]
        split = metadata["data"]["split"]
        seen = seen_ids(metadata)
        assert len(seen) == 3415 + 731 == len(split["train_ids"]) + len(split["val_ids"])
        assert seen.isdisjoint(split["test_ids"]) and len(split["test_ids"]) == 731
    assert seen_ids({}) is None and seen_ids({"data": {"split": {"test_ids": ["a"]}}}) is None
