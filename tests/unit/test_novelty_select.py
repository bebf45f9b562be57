"""k of the novelty head is chosen on the validation split by leave-one-class-out (`novelty_fit.select_k`)."""

from __future__ import annotations

import numpy as np

from models.novelty_fit import kth_distances, select_k
from models.novelty_head import KnnNoveltyHead, unit_rows
from models.windows import Windows

D = 8


def cluster(axis: int, n: int, rng, spread: float = 0.5) -> np.ndarray:
    return np.eye(D)[axis] * 4.0 + rng.normal(0, spread, (n, D))


def labelled_windows(labels: np.ndarray, windows_per_object: int = 2) -> Windows:
    """Windows carrying only what select_k reads: labels, object ids (pairs of windows), lengths."""
    n = len(labels)
    ids = np.array([f"o{i // windows_per_object}" for i in range(n)], object)
    return Windows(np.zeros((n, 4, 3), np.float32), np.zeros((n, 3), np.float32), np.full(n, 4), ids, labels)


def test_kth_distances_equal_the_heads_scores() -> None:
    rng = np.random.default_rng(0)
    bank, queries = unit_rows(rng.normal(size=(60, D))), rng.normal(size=(9, D))
    both = kth_distances(unit_rows(queries), bank, [3, 7])
    for col, k in enumerate([3, 7]):
        head = KnnNoveltyHead(bank, k, np.zeros(2), {}, {})
        np.testing.assert_allclose(both[:, col], head.score(queries), atol=1e-6)


def test_a_few_mislabelled_twins_of_the_held_out_class_make_small_k_lose() -> None:
    """Eight training windows labelled A sit tightly at class C's centre. Holding C out, k = 5 still finds
    C's objects near the bank (C's AUC falls); k = 20 does not. The proxy must prefer k = 20."""
    rng = np.random.default_rng(1)
    names = np.array(["A", "B", "C"])
    train = np.concatenate(
        [cluster(0, 100, rng), cluster(1, 100, rng), cluster(2, 100, rng), cluster(2, 8, rng, 0.05)]
    )
    train_labels = np.r_[np.repeat(names, 100), np.full(8, "A")]
    val_labels = np.repeat(names, 40)
    val = np.concatenate([cluster(0, 40, rng), cluster(1, 40, rng), cluster(2, 40, rng)])
    k, record = select_k(
        unit_rows(train), train_labels, unit_rows(val), labelled_windows(val_labels), {}, (5, 20)
    )
    assert k == 20 and record["chosen"] == 20 and record["split"] == "val"
    assert record["grid"]["20"]["loco_roc_auc"] > record["grid"]["5"]["loco_roc_auc"] + 0.03
    assert 0.0 <= record["grid"]["20"]["val_known_flagged_p95"] <= 0.2


def test_grid_values_above_the_reduced_bank_are_dropped_and_one_class_falls_back() -> None:
    rng = np.random.default_rng(2)
    train = np.concatenate([cluster(0, 12, rng), cluster(1, 12, rng)])
    labels = np.repeat(["A", "B"], 12)
    val = labelled_windows(np.repeat(["A", "B"], 6))
    units = unit_rows(np.concatenate([cluster(0, 6, rng), cluster(1, 6, rng)]))
    k, record = select_k(unit_rows(train), labels, units, val, {}, (5, 10, 20))
    assert sorted(record["grid"]) == ["10", "5"] and k in (5, 10)  # 20 > the 12 windows left without a class
    only_a = labelled_windows(np.repeat(["A"], 6))
    k, record = select_k(unit_rows(train), labels, units[:6], only_a, {}, (5, 10))
    assert record["method"].startswith("default") and k == 24  # DEFAULT_K capped at the bank
