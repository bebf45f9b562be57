"""Feature models of models.baseline_rf: young-object crops and the boosted model on folded shapes."""

from __future__ import annotations

import numpy as np

from broker.folding import fold_window
from models.baseline_rf import BoostedFeatureModel, RandomForestBaseline, young_crops
from models.windows import Windows

SHAPES = {
    "sine": lambda phase: 0.3 * np.sin(2 * np.pi * phase),
    "sawtooth": lambda phase: 0.4 * ((phase * 1.0) % 1.0 - 0.5) * np.where(phase % 1.0 < 0.8, 1.0, -4.0),
    "eclipse": lambda phase: 0.8 * np.exp(-0.5 * (((phase + 0.5) % 1.0 - 0.5) / 0.03) ** 2),
}


def shape_windows(n_per_class: int, n_points: int, seed: int) -> Windows:
    """Folded windows of noisy light curves of three shapes with the same period distribution, so only
    the shape tells them apart."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, shape in SHAPES.items():
        for k in range(n_per_class):
            period = rng.uniform(0.3, 3.0)
            mjd = np.sort(rng.uniform(0, 1000, n_points))
            magerr = np.full(n_points, 0.03)
            mag = 15 + shape(mjd / period) + rng.normal(0, 0.03, n_points)
            steps, aux = fold_window(mjd, mag, magerr, period)
            x = np.zeros((200, 3), np.float32)
            x[:n_points] = steps
            rows.append((x, aux, n_points, f"{label}-{seed}-{k}", label))
    x, aux, lengths, ids, labels = zip(*rows, strict=True)
    return Windows(
        np.stack(x),
        np.stack(aux),
        np.array(lengths, np.int32),
        np.array(ids, object),
        np.array(labels, object),
    )


def test_young_crops_cut_each_window_to_every_shorter_bucket() -> None:
    windows = Windows.concatenate([shape_windows(2, 200, seed=1), shape_windows(1, 100, seed=2)])
    crops = young_crops(windows)
    assert crops.lengths.tolist() == [50, 100, 150] * 6 + [50] * 3
    assert crops.object_ids.tolist() == [o for o in windows.object_ids[:6] for _ in range(3)] + list(
        windows.object_ids[6:]
    )
    assert (crops.labels == np.repeat(windows.labels, [3] * 6 + [1] * 3)).all()
    for i, n in enumerate(crops.lengths):
        mag = crops.x[i, :n, 1]
        assert abs(mag.mean()) < 1e-5 and abs(mag.std() - 1) < 1e-4  # re-standardised like broker.folding
        assert abs(crops.x[i, :n, 0].sum() - 1.0) < 1e-5  # Δφ wraps once around the phase circle
        assert not crops.x[i, n:].any()  # zero padding past the crop
    assert (crops.aux[:, 2] == windows.aux[np.repeat(np.arange(9), [3] * 6 + [1] * 3), 2]).all()  # same P


def test_boosted_model_trained_on_crops_classifies_young_windows() -> None:
    classes = ["sine", "sawtooth", "eclipse", "never_seen"]
    model = BoostedFeatureModel(classes, max_iter=60).fit(shape_windows(30, 200, seed=3))
    young = shape_windows(20, 50, seed=4)
    proba = model.predict_proba(young)
    assert proba.shape == (len(young), 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert not proba[:, 3].any()  # a class absent from training gets probability 0
    accuracy = np.mean(np.asarray(classes, object)[proba.argmax(1)] == young.labels)
    assert accuracy > 0.9


def test_forest_size_is_bounded_by_min_samples_leaf() -> None:
    import pickle

    windows = shape_windows(30, 200, seed=5)
    windows.labels = np.random.default_rng(5).permutation(windows.labels)  # noise: full trees memorise it
    full = RandomForestBaseline(list(SHAPES), n_estimators=20).fit(windows)
    bounded = RandomForestBaseline(list(SHAPES), n_estimators=20, min_samples_leaf=10, max_depth=6)
    bounded.fit(windows)
    assert len(pickle.dumps(bounded.forest)) < len(pickle.dumps(full.forest)) / 2
    assert bounded.forest.min_samples_leaf == 10 and bounded.forest.max_depth == 6
