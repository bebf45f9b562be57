"""Per-length temperature scaling: the fit recovers a known temperature, both engines apply it, legacy
bundles are served at T = 1, and the evaluation reports ECE/NLL before and after."""

from __future__ import annotations

import numpy as np
import pytest

from models.bundle import load_bundle, make_untrained_bundles, save_bundle
from models.calibration import (
    TemperatureTable,
    expected_calibration_error,
    fit_temperature,
    nll,
    softmax,
    table_from_metadata,
    uncalibrated,
)
from models.evaluate import calibration_section
from models.onnx_export import export_onnx
from models.onnx_serving import OnnxBundle
from models.windows import Windows

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sampled_labels(logits: np.ndarray, rng) -> np.ndarray:
    cumulative = np.cumsum(softmax(logits), axis=1)
    return (rng.uniform(size=(len(logits), 1)) > cumulative).sum(axis=1)


def test_fit_recovers_the_temperature_that_made_the_logits_overconfident() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2.0, (6000, 5))
    y = sampled_labels(true_logits, rng)  # labels drawn from softmax(true logits): calibrated by design
    served = 2.5 * true_logits  # an over-confident network: T = 2.5 undoes it
    t = fit_temperature(served, y)
    assert t == pytest.approx(2.5, rel=0.08)
    assert nll(softmax(served, t), y) < nll(softmax(served), y)
    assert (
        expected_calibration_error(softmax(served, t), y)
        < 0.03
        < expected_calibration_error(softmax(served), y)
    )


def test_table_picks_the_longest_calibrated_length_and_inverts() -> None:
    table = TemperatureTable({"50": 2.0, "100": 1.5, "200": 0.8})
    assert [table.scale(n) for n in (20, 50, 99, 150, 200)] == [2.0, 2.0, 2.0, 1.5, 0.8]
    assert table_from_metadata({}) is None  # a bundle fitted before: served at T = 1
    logits = np.random.default_rng(1).normal(size=(4, 3))
    temperatures = table.scales(np.array([50, 100, 150, 200]))
    np.testing.assert_allclose(uncalibrated(softmax(logits, temperatures), temperatures), softmax(logits))
    with pytest.raises(ValueError, match="> 0"):
        TemperatureTable({"50": 0.0})


def random_windows(n: int = 12, seed: int = 1) -> Windows:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 200, 3)).astype(np.float32)
    x[:, :, 2] = np.abs(x[:, :, 2])
    aux = np.column_stack([rng.normal(16, 1, n), rng.uniform(0.1, 1, n), rng.uniform(-1, 2, n)])
    lengths = np.resize(np.array([50, 100, 150, 200], np.int32), n)
    labels = np.resize(np.array(["a", "b", "c"], object), n)
    ids = np.array([f"o{i // 2}" for i in range(n)], object)
    return Windows(x, aux.astype(np.float32), lengths, ids, labels)


def test_both_engines_divide_the_logits_by_the_temperature_of_each_length(tmp_path) -> None:
    clf_path, _ = make_untrained_bundles(tmp_path, class_names=["a", "b", "c"])
    windows = random_windows()
    plain = load_bundle(clf_path).predict(windows).proba
    bundle = load_bundle(clf_path)
    bundle.metadata["temperature"] = {"by_length": {"50": 3.0, "100": 0.5, "150": 1.0, "200": 2.0}}
    save_bundle(bundle, clf_path)
    export_onnx(load_bundle(clf_path), clf_path)
    tempered = load_bundle(clf_path).predict(windows).proba
    scales = TemperatureTable(bundle.metadata["temperature"]["by_length"]).scales(windows.lengths)
    np.testing.assert_allclose(tempered, softmax(np.log(plain) * 1.0, scales), atol=1e-9)  # log p = z - c
    assert not np.allclose(tempered[windows.lengths != 150], plain[windows.lengths != 150])
    np.testing.assert_array_equal(tempered.argmax(axis=1), plain.argmax(axis=1))
    np.testing.assert_allclose(OnnxBundle(clf_path).predict(windows).proba, tempered, atol=1e-5)


def test_calibration_section_reports_before_and_after_per_length() -> None:
    windows = random_windows(8)
    table = TemperatureTable({"50": 2.0, "100": 2.0, "150": 2.0, "200": 2.0})
    logits = np.random.default_rng(2).normal(0, 3, (8, 3))
    section = calibration_section(windows, softmax(logits, 2.0), ["a", "b", "c"], table)
    y = np.resize(np.array([0, 1, 2]), 8)
    assert section["temperatures"] == {"50": 2.0, "100": 2.0, "150": 2.0, "200": 2.0}
    assert sum(m["n_objects"] for m in section["by_length"].values()) == section["all"]["n_objects"] == 4
    raw = softmax(logits)  # objects o0..o3 = windows (0, 1), (2, 3), ...: the mean of their probabilities
    before = raw.reshape(4, 2, 3).mean(axis=1)
    assert section["all"]["nll_before"] == pytest.approx(nll(before, y[::2]))
    legacy = calibration_section(windows, raw, ["a", "b", "c"], None)
    assert legacy["temperatures"] is None and legacy["all"]["ece_before"] == legacy["all"]["ece_after"]


def test_fit_temperatures_gives_every_bucket_with_enough_windows_a_temperature(tmp_path) -> None:
    from models.calibration_fit import fit_temperatures

    clf_path, _ = make_untrained_bundles(tmp_path, class_names=["a", "b", "c"])
    windows = random_windows(
        60
    )  # lengths 50/100/150/200 in turn: 60 cut to 50, 45 to 100, 30 to 150, 15 to 200
    section = fit_temperatures(load_bundle(clf_path), windows)
    assert sorted(section["by_length"], key=int) == ["50", "100", "150"]  # 200: 15 < 20 windows
    assert section["windows"]["50"]["n_windows"] == 60 and section["windows"]["150"]["n_windows"] == 30
    for m in section["windows"].values():
        assert m["nll_after"] <= m["nll_before"] + 1e-9  # the fitted T minimises the NLL (T = 1 included)
