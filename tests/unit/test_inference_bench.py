"""The inference benchmark's function (called by `make bench`) measures both engines at a given shape, on
the served path (classifier + the novelty bundle's iTCN and k-NN head), one iTCN with its head, and iTCN +
AE-GMM."""

from __future__ import annotations

import pytest

from benchmarks.inference_bench import SHAPES, measure, synthetic_windows


@pytest.mark.usefixtures("one_torch_thread")
def test_measure_reports_windows_per_second_for_both_engines() -> None:
    result = measure(threads=1, min_seconds=0.05, shapes={"8 mixed": [50, 200] * 4})
    assert result["onnx_windows_per_s"] > 0 and result["torch_windows_per_s"] > 0
    assert result["onnx_aegmm_windows_per_s"] > 0 and result["torch_aegmm_windows_per_s"] > 0
    assert result["onnx_one_itcn_windows_per_s"] > 0 and result["torch_one_itcn_windows_per_s"] > 0
    rows = {f"{engine}{path}" for engine in ("onnx", "torch") for path in ("", " one itcn", " itcn+aegmm")}
    assert set(result["by_shape"]["8 mixed"]) == rows
    assert result["served_novelty"].startswith("crts-itcn-knn")  # the served path includes the head


def test_the_plugin_shapes_are_batches_of_bucket_lengths_or_of_young_objects_any_length() -> None:
    """The plugin's micro-batches: at most 512 windows, of the buckets, or (young objects, each one window
    of all its points) of any length from 50 to 199 points."""
    young = {name: lengths for name, lengths in SHAPES.items() if "young" in name}
    assert len(young) == 1
    for name, lengths in SHAPES.items():
        allowed = set(range(50, 200)) if name in young else {50, 100, 150, 200}
        assert len(lengths) <= 512 and set(lengths) <= allowed
    assert len(set(next(iter(young.values())))) > 100  # many distinct lengths: many forward passes
    assert next(reversed(SHAPES)) == "512 mixed 50/100/150/200"  # the headline keys' shape
    windows = synthetic_windows([50, 200])
    assert not windows.x[0, 50:].any()  # zero past the true length, as Windows says
