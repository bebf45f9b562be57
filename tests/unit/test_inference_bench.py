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


def test_the_plugin_shapes_are_batches_of_one_length_bucket_or_mixed() -> None:
    for lengths in SHAPES.values():
        assert len(lengths) <= 512 and set(lengths) <= {50, 100, 150, 200}
    windows = synthetic_windows([50, 200])
    assert not windows.x[0, 50:].any()  # zero past the true length, as Windows says
