"""Period–amplitude novelty component: plane density, tail scale, weight choice, bundle file."""

from __future__ import annotations

import numpy as np
import pytest

from models.bundle import load_bundle, make_untrained_bundles, save_bundle
from models.bundle_format import N_ENERGY_QUANTILES
from models.novelty_fit import fit_knn_head, select_plane_weight
from models.novelty_head import KnnNoveltyHead, PlaneComponent, unit_rows
from models.period_amplitude import PeriodAmplitudeDensity, plane_points, tail
from models.windows import AUX, Windows
from tests.unit.test_bundle import mixed_windows, synthetic_windows

GRID = np.linspace(0.0, 100.0, N_ENERGY_QUANTILES)
D = 8


def aux_rows(log_period, std_mag) -> np.ndarray:
    aux = np.zeros((len(log_period), len(AUX)), np.float32)
    aux[:, AUX.index("log10_period")] = log_period
    aux[:, AUX.index("std_mag")] = std_mag
    aux[:, AUX.index("mean_mag")] = 15.0
    return aux


def test_each_training_object_is_one_point_of_the_plane() -> None:
    # object "a" has 50 windows at one spot, "b" and "c" one each elsewhere: with k = 2 the spot of "a"
    # is as sparse as any other (an object with many windows does not make its spot dense)
    aux = aux_rows([-0.5] * 50 + [0.5, 1.5], [0.1] * 50 + [0.3, 0.5])
    ids = np.array(["a"] * 50 + ["b", "c"])
    density = PeriodAmplitudeDensity.fit(aux, ids, k=2)
    assert density.bank.shape == (3, 2)
    np.testing.assert_allclose(density.center, plane_points(aux[[0, 50, 51]]).mean(axis=0))
    at_a = density.score(aux[:1])[0]
    assert at_a == pytest.approx(np.sort(np.linalg.norm(density.bank - density.bank[0], axis=1))[1])


def test_an_empty_region_of_the_plane_scores_higher_than_a_crowded_one() -> None:
    rng = np.random.default_rng(0)
    # two known populations: short-period high-amplitude, long-period low-amplitude
    logp = np.r_[rng.normal(-0.4, 0.05, 200), rng.normal(1.5, 0.1, 200)]
    std = 10 ** np.r_[rng.normal(-0.5, 0.05, 200), rng.normal(-1.5, 0.1, 200)]
    density = PeriodAmplitudeDensity.fit(aux_rows(logp, std), np.arange(400).astype(str))
    crowded = density.score(aux_rows([-0.4, 1.5], [10**-0.5, 10**-1.5]))
    empty = density.score(aux_rows([0.6], [10**-1.0]))  # days-long period, a few tenths of a mag
    assert empty[0] > 5 * crowded.max()


def test_tail_is_minus_log_of_the_upper_share_and_capped() -> None:
    quantiles = np.linspace(0.0, 1.0, 101)  # uniform scores on [0, 1]
    np.testing.assert_allclose(tail(np.array([0.0, 0.5, 0.9]), quantiles), -np.log([1.0, 0.5, 0.1]))
    assert tail(np.array([7.0]), quantiles)[0] == pytest.approx(-np.log(1e-3))
    scores = np.linspace(-1, 2, 50)
    assert (np.diff(tail(scores, quantiles)) >= 0).all()


def plane_windows(rng, shifted_class: str | None) -> Windows:
    """Three classes whose embeddings (x) are identical noise; with `shifted_class`, that class alone sits
    apart in the period–amplitude plane."""
    n = 60
    labels = np.repeat(["p", "q", "r"], n).astype(object)
    logp = rng.normal(0.0, 0.1, 3 * n)
    if shifted_class is not None:
        logp[labels == shifted_class] += 2.0
    aux = aux_rows(logp, np.full(3 * n, 0.2))
    x = np.zeros((3 * n, 200, 3), np.float32)
    return Windows(x, aux, np.full(3 * n, 200, np.int32), np.arange(3 * n).astype(str).astype(object), labels)


@pytest.mark.parametrize("shifted", [True, False])
def test_the_weight_is_chosen_leaving_one_class_out(shifted: bool) -> None:
    rng = np.random.default_rng(1)
    train = plane_windows(rng, "q" if shifted else None)
    calibration = plane_windows(rng, "q" if shifted else None)
    # embeddings say nothing: every class is the same cloud
    bank = unit_rows(rng.normal(size=(len(train), D)))
    units = unit_rows(rng.normal(size=(len(calibration), D)))
    weight, record = select_plane_weight(bank, train, units, calibration, k=5)
    assert record["chosen"] == weight
    assert set(record["grid"]) == {"0.0", "0.1", "0.2", "0.3", "0.5"}
    if shifted:  # class q left out is far from p and r in the plane: the largest weight wins
        assert weight == 0.5
    else:  # the plane adds nothing: every weight ties, the smallest (none) wins
        assert weight == 0.0


def test_a_head_with_a_plane_component_round_trips_and_needs_the_aux(tmp_path) -> None:
    clf_path, _ = make_untrained_bundles(tmp_path, class_names=["sine", "sawtooth", "eclipse"])
    bundle = load_bundle(clf_path)
    head = fit_knn_head(bundle, synthetic_windows(80, seed=1), mixed_windows(40, seed=2), k=5)
    train = synthetic_windows(80, seed=1)
    density = PeriodAmplitudeDensity.fit(train.aux, train.object_ids, k=3)
    head.plane = PlaneComponent(density, 0.2, head.ranks.quantiles, np.linspace(0, 3, N_ENERGY_QUANTILES))
    bundle.novelty_head = head
    save_bundle(bundle, clf_path)
    windows = mixed_windows(30, seed=4)
    reference = bundle.predict(windows).novelty_score
    copy = load_bundle(clf_path)
    assert copy.novelty_head.plane.weight == 0.2 and copy.novelty_head.plane.density.k == 3
    assert copy.novelty_head.info["period_amplitude"]["features"] == ["log10_period", "log10_std_mag"]
    np.testing.assert_allclose(copy.predict(windows).novelty_score, reference, atol=1e-6)
    # the joined score is the weighted sum of the two tails
    embedding = np.random.default_rng(5).normal(size=(4, head.bank.shape[1]))
    distance = head.embedding_distance(embedding)
    plane = copy.novelty_head.plane
    expected = 0.8 * tail(distance, plane.embedding_quantiles) + 0.2 * tail(
        plane.density.score(windows.aux[:4]), plane.plane_quantiles
    )
    np.testing.assert_allclose(copy.novelty_head.score(embedding, windows.aux[:4]), expected, atol=1e-6)
    with pytest.raises(ValueError, match="aux"):
        copy.novelty_head.score(embedding)


def test_a_zero_weight_is_refused() -> None:
    density = PeriodAmplitudeDensity.fit(aux_rows([0.0, 1.0], [0.1, 0.2]), np.array(["a", "b"]), k=1)
    with pytest.raises(Exception, match="weight"):
        PlaneComponent(density, 0.0, np.zeros(3), np.zeros(3))


def test_a_plain_head_scores_without_aux() -> None:
    bank = unit_rows(np.random.default_rng(2).normal(size=(20, D)))
    head = KnnNoveltyHead(bank, 3, np.zeros(2), {}, {})
    assert head.plane is None and head.score(bank[:2]).shape == (2,)
