"""k-NN novelty head: distances, calibration on synthetic Gaussians with known outliers, the bundle file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.bundle import load_bundle, make_untrained_bundles, save_bundle
from models.bundle_format import METADATA_FILE, N_ENERGY_QUANTILES, BundleFormatError
from models.novelty_head import NOVELTY_HEAD_FILE, KnnNoveltyHead, load_head, unit_rows
from tests.unit.test_bundle import mixed_windows, synthetic_windows

GRID = np.linspace(0.0, 100.0, N_ENERGY_QUANTILES)
D = 8


def gaussian_classes(n_per_class: int, rng, n_classes: int = 3) -> np.ndarray:
    """Embeddings of `n_classes` tight Gaussian clusters along the first `n_classes` axes, (n, D)."""
    centres = np.eye(D)[:n_classes] * 4.0
    return np.concatenate([c + rng.normal(0, 0.5, (n_per_class, D)) for c in centres])


def outliers(n: int, rng) -> np.ndarray:
    """A class the bank never saw: a cluster along an axis no known class uses."""
    return np.eye(D)[D - 1] * 4.0 + rng.normal(0, 0.5, (n, D))


def head_on_gaussians(k: int = 10) -> KnnNoveltyHead:
    rng = np.random.default_rng(0)
    bank = unit_rows(gaussian_classes(300, rng))
    head = KnnNoveltyHead(bank, k, np.zeros(2), {}, {"name": "test"})
    calibration = head.score(gaussian_classes(300, rng))  # fresh known-class embeddings
    return KnnNoveltyHead(bank, k, np.percentile(calibration, GRID), {}, {"name": "test"})


def test_score_is_the_distance_to_the_kth_nearest_unit_embedding() -> None:
    rng = np.random.default_rng(1)
    bank = unit_rows(rng.normal(size=(40, D)))
    query = rng.normal(size=(7, D)) * rng.uniform(0.1, 10, (7, 1))  # lengths must not matter
    for k in (1, 5, 40):
        head = KnnNoveltyHead(bank, k, np.zeros(2), {}, {})
        brute = np.sort(np.linalg.norm(unit_rows(query)[:, None] - bank[None], axis=2), axis=1)[:, k - 1]
        np.testing.assert_allclose(head.score(query), brute, atol=1e-6)  # float32 distances


def test_known_outliers_are_flagged_and_known_objects_at_the_calibrated_rate() -> None:
    head = head_on_gaussians()
    rng = np.random.default_rng(2)
    known = head.percentile(head.score(gaussian_classes(1000, rng)))
    unseen = head.percentile(head.score(outliers(300, rng)))
    assert np.mean(unseen > 95) == 1.0
    # fresh known-class embeddings are flagged at about the nominal 5% (binomial sd ~0.4% at n = 3000)
    assert 0.03 < np.mean(known > 95) < 0.07
    assert 0.17 < np.mean(known > 80) < 0.23


def test_each_length_is_ranked_in_its_own_table() -> None:
    bank = unit_rows(np.random.default_rng(3).normal(size=(20, D)))
    tables = {50: np.linspace(1.0, 2.0, 11), 200: np.linspace(0.0, 1.0, 11)}
    head = KnnNoveltyHead(bank, 3, np.linspace(0.0, 2.0, 11), tables, {})
    out = head.percentile(np.array([1.5, 1.5, 0.5]), np.array([50, 100, 200]))
    np.testing.assert_allclose(out, [50.0, 50.0, 50.0])
    assert head.thresholds["p95"] == pytest.approx(1.9)


def test_a_bank_smaller_than_k_is_refused() -> None:
    with pytest.raises(BundleFormatError, match="m >= k"):
        KnnNoveltyHead(np.eye(D)[:3], 5, np.zeros(2), {}, {})


def test_head_round_trips_through_the_bundle_and_refuses_other_weights(tmp_path) -> None:
    from models.novelty_fit import fit_knn_head

    clf_path, _ = make_untrained_bundles(tmp_path, class_names=["sine", "sawtooth", "eclipse"])
    bundle = load_bundle(clf_path)
    train, calibration = synthetic_windows(80, seed=1), mixed_windows(40, seed=2)
    bundle.novelty_head = fit_knn_head(bundle, train, calibration, k=5, weight_grid=(0.0,))  # plain head
    save_bundle(bundle, clf_path)
    assert (clf_path / NOVELTY_HEAD_FILE).is_file()
    windows = mixed_windows(30, seed=4)
    reference = bundle.predict(windows)
    copy = load_bundle(clf_path)
    assert copy.novelty_head.name == "crts-itcn-untrained-knn5" and copy.novelty_head.k == 5
    served = copy.predict(windows)
    np.testing.assert_allclose(served.novelty_score, reference.novelty_score, atol=1e-6)
    assert sorted(copy.novelty_head.ranks.by_length) == [50, 100, 150, 200]
    pct = copy.novelty_percentile(served.novelty_score, windows.lengths)
    assert ((pct >= 0) & (pct <= 100)).all()
    # a retrained classifier (other weights) makes the head stale: refused, naming the refit command
    (clf_path / "weights.pt").write_bytes((clf_path / "weights.pt").read_bytes() + b"\0")
    document = json.loads((clf_path / METADATA_FILE).read_text())
    with pytest.raises(BundleFormatError, match="varstream fit-novelty-head"):
        load_head(clf_path, document)


@pytest.mark.parametrize("engine", ["onnx", "torch"])
@pytest.mark.parametrize("novelty_bundle", ["", "none", "models/bundles/crts-aegmm"])
@pytest.mark.parametrize("classifier_bundle", ["", "models/bundles/crts-itcn"])
def test_the_runtime_loads_a_head_only_where_it_answers(engine, novelty_bundle, classifier_bundle) -> None:
    """A classifier's own head answers novelty by default (crts-itcn); the shipped classifier has none, so
    crts-itcn's network and head answer beside it. With novelty off or the AE-GMM named, no head is
    loaded, so none scores a window on the hot path."""
    from broker.config import InferenceConfig
    from broker.runtime import InferenceRuntime
    from models.head_novelty import HeadNovelty

    runtime = InferenceRuntime(
        InferenceConfig(classifier_bundle=classifier_bundle, novelty_bundle=novelty_bundle, engine=engine)
    )
    own_head = novelty_bundle == "" and classifier_bundle != ""
    assert runtime.uses_head is own_head
    assert (runtime.classifier.novelty_head is not None) is own_head
    if own_head:
        assert runtime.novelty is runtime.classifier.novelty_head
    elif novelty_bundle == "":  # the shipped classifier: crts-itcn's head
        assert isinstance(runtime.novelty, HeadNovelty) and runtime.novelty.name == "crts-itcn-knn10-pa"
    else:  # the AE-GMM bundle when named, nothing when novelty is off
        assert (runtime.novelty is not None) is (novelty_bundle != "none")
        assert not isinstance(runtime.novelty, HeadNovelty)


@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_a_classifier_bundle_named_as_the_novelty_bundle_scores_with_its_head(engine) -> None:
    """crts-itcn named as the novelty bundle serves its head through `HeadNovelty`: beside itself, the
    same probabilities, scores and percentiles as its head serving by default; beside the shipped
    classifier (the default pair), the same novelty answers and that classifier's probabilities."""
    from broker.config import InferenceConfig
    from broker.runtime import InferenceRuntime
    from models.bundle import DEFAULT_NOVELTY_BUNDLE
    from models.head_novelty import HeadNovelty

    windows = mixed_windows(24, seed=5)
    per_object = [windows.subset(np.array([i])) for i in range(len(windows))]
    itcn = str(DEFAULT_NOVELTY_BUNDLE)
    own = InferenceRuntime(InferenceConfig(engine=engine, device="cpu", classifier_bundle=itcn))
    reference = own.classify(per_object)
    named = InferenceRuntime(
        InferenceConfig(engine=engine, device="cpu", classifier_bundle=itcn, novelty_bundle=itcn)
    )
    assert not named.uses_head and named.classifier.novelty_head is None
    assert isinstance(named.novelty, HeadNovelty)
    shipped = InferenceRuntime(InferenceConfig(engine=engine, device="cpu"))
    assert shipped.info["novelty_name"] == named.info["novelty_name"] == "crts-itcn-knn10-pa"
    answers = {runtime: runtime.classify(per_object) for runtime in (named, shipped)}
    for runtime, served in answers.items():
        for a, b in zip(reference, served, strict=True):
            if runtime is named:
                np.testing.assert_allclose(b.proba, a.proba, atol=1e-9)
            assert b.novelty_energy == pytest.approx(a.novelty_energy, rel=1e-9)
            assert b.novelty_percentile == pytest.approx(a.novelty_percentile, rel=1e-9)
            assert b.is_novel is a.is_novel
    shipped_proba = np.array([a.proba for a in answers[shipped]])
    assert not np.allclose(shipped_proba, [a.proba for a in reference])  # another network classifies


def test_a_classifier_without_a_head_is_refused_as_the_novelty_bundle(tmp_path) -> None:
    from broker.config import InferenceConfig
    from broker.errors import BundleError
    from broker.runtime import InferenceRuntime
    from models.head_novelty import as_novelty_model

    clf_path, novelty_path = make_untrained_bundles(tmp_path)
    with pytest.raises(BundleError, match="no novelty head"):
        InferenceRuntime(InferenceConfig(engine="torch", device="cpu", novelty_bundle=str(clf_path)))
    aegmm = load_bundle(novelty_path)
    assert as_novelty_model(aegmm) is aegmm  # an AE-GMM bundle serves as it is
