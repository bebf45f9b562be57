"""The light-curve size label of the annotation counters (broker.metrics.points_bin)."""

from __future__ import annotations

import pytest

from broker.metrics import POINTS_BINS, points_bin


@pytest.mark.parametrize(
    ("n_points", "label"),
    [(1, "<50"), (49, "<50"), (50, "50-99"), (99, "50-99"), (100, "100-149"), (149, "100-149"),
     (150, "150-199"), (199, "150-199"), (200, "200+"), (12_000, "200+")],
)  # fmt: skip
def test_each_size_falls_in_the_bin_of_its_window_length_bucket(n_points: int, label: str) -> None:
    assert points_bin(n_points) == label


def test_the_bins_are_a_small_fixed_set_in_size_order() -> None:
    assert [points_bin(n) for n in (0, 50, 100, 150, 200)] == list(POINTS_BINS)
