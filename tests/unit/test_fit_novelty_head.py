"""`varstream train` fits the classifier's k-NN novelty head; `varstream fit-novelty-head` refits it in place
on the bundle's own split, and the plugin's runtime serves it (ONNX Runtime) instead of the AE-GMM."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from broker.cli import main as varstream
from broker.config import InferenceConfig
from broker.runtime import InferenceRuntime
from models.bundle import (
    AEGMM_BUNDLE,
    DEFAULT_CLASSIFIER_BUNDLE,
    DEFAULT_NOVELTY_BUNDLE,
    BundleFormatError,
    load_bundle,
)
from models.onnx_serving import OnnxBundle
from tests.unit.test_bundle import synthetic_windows
from tests.unit.test_train_period_settings import restore_torch_threads, two_shape_csv  # noqa: F401

CSV_OPTIONS = ["--time-col", "mjd", "--mag-col", "mag", "--err-col", "err", "--class-col", "class"]


def del_temperature(path):
    """Drop the fitted temperatures from a bundle folder's metadata."""
    document = json.loads((path / "metadata.json").read_text())
    del document["metadata"]["temperature"]
    (path / "metadata.json").write_text(json.dumps(document))


@pytest.fixture
def trained(two_shape_csv, tmp_path, restore_torch_threads):  # noqa: F811
    out = tmp_path / "bundle"
    argv = ["train", "--data", f"csv:{two_shape_csv}", *CSV_OPTIONS, "--min-class-count", "2", "--exclude",
            "--hidden", "4", "--depth", "5", "--epochs", "1", "--threads", "1", "--no-progress",
            "--out", str(out), "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    assert varstream(argv) == 0
    return out


def test_train_fits_the_head_and_the_runtime_serves_it(trained, two_shape_csv, tmp_path):  # noqa: F811
    bundle = load_bundle(trained)
    head = bundle.novelty_head
    assert head is not None and head.name == "csv-itcn-knn5"  # the only grid k below 6 windows a class
    # fitted on the calibration split carved out of train (early stopping used val), recorded by id
    assert head.info["calibration"]["split"] == "calibration"
    assert head.info["k_selection"]["split"] == "calibration"
    assert list(head.info["k_selection"]["grid"]) == ["5"]
    split = bundle.metadata["data"]["split"]
    assert split["calibration"]["fraction_of_train"] == pytest.approx(1 / 7)
    assert len(split["calibration_ids"]) == 2  # 1 of the 6 training objects of each class
    assert not set(split["calibration_ids"]) & {*split["train_ids"], *split["val_ids"], *split["test_ids"]}
    assert bundle.metadata["temperature"]["split"] == "calibration"
    assert len(head.bank) == bundle.metadata["data"]["splits"]["train"]["n_windows"]
    runtime = InferenceRuntime(InferenceConfig(classifier_bundle=str(trained), device="cpu", engine="onnx"))
    assert runtime.uses_head and runtime.info["novelty_name"] == head.name
    windows = synthetic_windows(6, lengths=[50, 100, 150, 200, 200, 100])
    answers = runtime.classify([windows.subset([i]) for i in range(len(windows))])
    reference = bundle.predict(windows).novelty_score
    for answer, score, length in zip(answers, reference, windows.lengths, strict=True):
        assert answer.novelty_energy == pytest.approx(score, abs=1e-5)
        assert answer.novelty_percentile == pytest.approx(
            float(bundle.novelty_percentile(np.array([score]), np.array([length]))[0]), abs=0.05
        )
    # the shipped pair: the classifier has no head, so crts-itcn's head scores by default; the AE-GMM when
    # its bundle is named
    shipped = InferenceRuntime(InferenceConfig(device="cpu", engine="onnx"))
    assert not shipped.uses_head and load_bundle(DEFAULT_CLASSIFIER_BUNDLE).novelty_head is None
    assert shipped.info["novelty_name"] == load_bundle(DEFAULT_NOVELTY_BUNDLE).novelty_head.name
    named = InferenceConfig(device="cpu", engine="onnx", novelty_bundle=str(AEGMM_BUNDLE))
    assert InferenceRuntime(named).info["novelty_name"] == "crts-aegmm"


def test_fit_command_refits_in_place_and_refuses_other_data(trained, two_shape_csv, tmp_path):  # noqa: F811
    argv = ["fit-novelty-head", "--bundle", str(trained), "--data", f"csv:{two_shape_csv}", *CSV_OPTIONS,
            "--k", "3", "--no-progress", "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    trained_t = load_bundle(trained).metadata["temperature"]  # train fits them too, on calibration
    assert trained_t["split"] == "calibration" and trained_t["by_length"] == {}  # toy: T = 1
    del_temperature(trained)  # as a bundle trained before temperatures existed
    assert load_bundle(trained).temperature is None  # served at T = 1
    assert varstream(argv) == 0
    assert load_bundle(trained).novelty_head.k == 3
    assert OnnxBundle(trained).novelty_head.k == 3  # the refreshed export serves it too
    fitted = load_bundle(trained).metadata["temperature"]  # the same command fits the temperatures
    assert fitted["split"] == "calibration" and fitted["by_length"] == {}  # toy split: < 20 windows, T = 1
    assert OnnxBundle(trained).temperature.by_length == load_bundle(trained).temperature.by_length
    # a classifier retrained in place makes its head stale: refused at load, refitted by the command
    state = torch.load(trained / "weights.pt", weights_only=True)
    state["aux_mean"] = state["aux_mean"] + 0.01
    torch.save(state, trained / "weights.pt")
    with pytest.raises(BundleFormatError, match="fit-novelty-head"):
        load_bundle(trained)
    assert varstream(argv) == 0
    assert load_bundle(trained).novelty_head.k == 3
    other = tmp_path / "other"
    shutil.copytree(two_shape_csv, other)
    (other / "sine0.csv").unlink()  # another object set: another split
    argv[argv.index(f"csv:{two_shape_csv}")] = f"csv:{other}"
    assert varstream(argv) != 0
    assert load_bundle(trained).novelty_head.k == 3  # left as it was


def test_the_period_amplitude_weights_can_be_left_out(trained, two_shape_csv, tmp_path):  # noqa: F811
    argv = ["fit-novelty-head", "--bundle", str(trained), "--data", f"csv:{two_shape_csv}", *CSV_OPTIONS,
            "--k", "3", "--no-progress", "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    assert varstream([*argv, "--period-amplitude-weights", "0"]) == 0
    head = load_bundle(trained).novelty_head
    assert head.plane is None and not head.name.endswith("-pa")
    assert head.info["period_amplitude_selection"]["chosen"] == 0.0
    with pytest.raises(SystemExit):  # argparse: weights lie in [0, 1]
        varstream([*argv, "--period-amplitude-weights", "1.5"])


def test_temperatures_can_be_refit_alone(trained, two_shape_csv, tmp_path):  # noqa: F811
    """--temperatures-only keeps the head as it is (a classifier served beside another bundle's head has
    none, and gets none)."""
    argv = ["fit-novelty-head", "--bundle", str(trained), "--data", f"csv:{two_shape_csv}", *CSV_OPTIONS,
            "--no-progress", "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    assert varstream([*argv, "--k", "3"]) == 0
    before = load_bundle(trained).novelty_head
    del_temperature(trained)
    assert varstream([*argv, "--temperatures-only"]) == 0
    after = load_bundle(trained)
    assert after.metadata["temperature"]["split"] == "calibration"
    assert after.novelty_head.k == 3 and after.novelty_head.name == before.name
    np.testing.assert_array_equal(after.novelty_head.bank, before.bank)
