"""ONNX Runtime serving against torch: the same answers on real CRTS windows of every length bucket.

Windows are built the way the plugin builds them (the bundle's own period search and folding) from the
first 50, 100, 150 and all points of real CRTS light curves in ../shared.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from broker.config import InferenceConfig
from broker.errors import BundleError
from broker.folding import make_windows
from broker.period import search_periods
from broker.runtime import InferenceRuntime, resolve_engine
from models.bundle import (
    AEGMM_BUNDLE,
    DEFAULT_CLASSIFIER_BUNDLE,
    DEFAULT_NOVELTY_BUNDLE,
    load_bundle,
    make_untrained_bundles,
    save_bundle,
)
from models.bundle_format import PADDED_BATCH_SIZES, BundleFormatError, EnergyRanks, pad_rows
from models.head_novelty import HeadNovelty
from models.lightcurve import LightCurve
from models.novelty_fit import fit_knn_head
from models.onnx_export import export_onnx
from models.onnx_serving import OnnxBundle
from models.windows import Windows
from tests.fixtures.crts_head import first_crts_tables

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_CURVES = 16
BUCKETS = (50, 100, 150, 200)
PROBA_ATOL = 1e-5  # float32 networks in two runtimes: differences are ~1e-7
ENERGY_RTOL = 1e-4
ENERGY_ATOL = 1e-4  # nats: float32 log-sum-exp in two runtimes differs by ~5e-5 where an energy is near 0
SCORE_ATOL = 1e-5  # k-NN distances of unit embeddings (0..2) from float32 embeddings
# The head joins that distance with the period–amplitude score on a -log(1 - F) scale (0..7), F read off
# piecewise-linear quantile tables: where quantiles crowd, the slope stretches float32 distance
# differences (1e-6 to 1e-5) tens of times. Percentiles, what is published, are compared tighter below.
SCORE_RTOL = 1e-3


@pytest.fixture(scope="module")
def torch_runtime() -> InferenceRuntime:
    return InferenceRuntime(InferenceConfig(device="cpu", engine="torch"))


@pytest.fixture(scope="module")
def onnx_runtime() -> InferenceRuntime:
    return InferenceRuntime(InferenceConfig(device="cpu", engine="onnx"))


@pytest.fixture(scope="module")
def real_windows(shared_data, torch_runtime) -> dict[int, list[Windows]]:
    """bucket length -> per-object windows of real CRTS curves cut to their first `bucket` points."""
    curves = first_crts_tables(shared_data, N_CURVES, min_points=250)
    assert len(curves) == N_CURVES
    out = {}
    for bucket in BUCKETS:
        heads = [table[: bucket if bucket < 200 else len(table)] for _, table in curves]
        cut = [LightCurve.from_arrays(h[:, 0], h[:, 1], h[:, 2], "V") for h in heads]
        periods = search_periods(cut, torch_runtime.period_config)
        per_object = []
        for (name, _), lc, res in zip(curves, cut, periods, strict=True):
            if res.skip_reason is None:
                w = make_windows(lc, res.period_days, name, None, torch_runtime.window_config)
                if len(w):
                    per_object.append(w)
        assert len(per_object) >= N_CURVES // 2
        assert {int(w.lengths.max()) for w in per_object} == {bucket}
        out[bucket] = per_object
    return out


@pytest.mark.parametrize("bucket", BUCKETS)
def test_engines_give_the_same_probabilities_and_energies(real_windows, bucket) -> None:
    windows = Windows.concatenate(real_windows[bucket])
    for path in (DEFAULT_CLASSIFIER_BUNDLE, DEFAULT_NOVELTY_BUNDLE, AEGMM_BUNDLE):
        reference = load_bundle(path).predict(windows)
        served = OnnxBundle(path, threads=1).predict(windows)
        np.testing.assert_allclose(served.proba, reference.proba, rtol=0, atol=PROBA_ATOL)
        np.testing.assert_allclose(served.proba.sum(axis=1), 1.0, atol=1e-9)
        if reference.energy is not None:
            np.testing.assert_allclose(served.energy, reference.energy, rtol=ENERGY_RTOL, atol=ENERGY_ATOL)
        if reference.novelty_score is not None:
            np.testing.assert_allclose(
                served.novelty_score, reference.novelty_score, rtol=SCORE_RTOL, atol=SCORE_ATOL
            )


def test_runtimes_answer_alike_for_every_object(real_windows, torch_runtime, onnx_runtime) -> None:
    assert (torch_runtime.engine, onnx_runtime.engine) == ("torch", "onnx")
    per_object = [w for bucket in BUCKETS for w in real_windows[bucket]]
    for a, b in zip(torch_runtime.classify(per_object), onnx_runtime.classify(per_object), strict=True):
        np.testing.assert_allclose(b.proba, a.proba, atol=PROBA_ATOL)
        assert a.windows_used == b.windows_used
        assert b.novelty_energy == pytest.approx(a.novelty_energy, rel=ENERGY_RTOL)
        assert b.novelty_percentile == pytest.approx(a.novelty_percentile, abs=0.05)


def test_batched_novelty_percentiles_match_one_object_at_a_time(real_windows, onnx_runtime) -> None:
    per_object = [w for bucket in BUCKETS for w in real_windows[bucket]]
    answers = onnx_runtime.classify(per_object)
    for windows, answer in zip(per_object, answers, strict=True):
        length = np.array([windows.lengths.max()])
        if onnx_runtime.uses_head:  # the classifier's k-NN head answers novelty (float32 distances)
            energy = onnx_runtime.classifier.predict(windows).novelty_score.mean()
            one = onnx_runtime.classifier.novelty_percentile(np.array([answer.novelty_energy]), length)
            assert answer.novelty_energy == pytest.approx(energy, rel=SCORE_RTOL, abs=SCORE_ATOL)
        else:  # the novelty bundle: by default crts-itcn's k-NN head (`HeadNovelty`), else an AE-GMM
            energy = onnx_runtime.novelty.predict(windows).energy.mean()
            one = onnx_runtime.novelty.energy_percentile(np.array([answer.novelty_energy]), length)
            head = isinstance(onnx_runtime.novelty, HeadNovelty)
            tolerance = {"rel": SCORE_RTOL, "abs": SCORE_ATOL} if head else {"rel": 1e-6}
            assert answer.novelty_energy == pytest.approx(energy, **tolerance)
        assert answer.novelty_percentile == float(one[0])
        assert answer.is_novel == (one[0] > onnx_runtime.config.novelty_percentile)


def test_padded_batches_give_the_same_answers(real_windows) -> None:
    windows = Windows.concatenate(real_windows[100] + real_windows[200])
    for bundle in (load_bundle(AEGMM_BUNDLE), OnnxBundle(AEGMM_BUNDLE)):
        plain = bundle.predict(windows, batch_size=7)
        padded = bundle.predict(windows, batch_size=7, pad_batches=True)
        np.testing.assert_allclose(padded.proba, plain.proba, atol=1e-6)
        np.testing.assert_allclose(padded.energy, plain.energy, rtol=1e-5)


def test_pad_rows_uses_a_few_fixed_sizes() -> None:
    assert [len(pad_rows(np.arange(n))) for n in (1, 16, 17, 200, 1024, 1500)] == [
        16,
        16,
        64,
        256,
        1024,
        1500,
    ]
    assert set(pad_rows(np.arange(3, 20))[17:]) == {3}
    assert tuple(sorted(PADDED_BATCH_SIZES)) == PADDED_BATCH_SIZES


def test_energy_ranks_pick_the_longest_calibrated_length_at_most_the_window() -> None:
    ranks = EnergyRanks(np.linspace(0, 10, 11), {50: np.linspace(10, 20, 11), 200: np.linspace(0, 10, 11)})
    out = ranks.percentile(np.array([15.0, 15.0, 5.0, 15.0]), np.array([50, 150, 200, 20]))
    np.testing.assert_allclose(out, [50.0, 50.0, 50.0, 50.0])
    np.testing.assert_allclose(ranks.percentile(np.array([5.0])), [50.0])


def test_export_of_a_new_bundle_serves_like_torch(tmp_path) -> None:
    """What `varstream train` does after saving: export, then ONNX Runtime gives torch's answers."""
    clf_path, nov_path = make_untrained_bundles(tmp_path, class_names=["a", "b", "c"])
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 200, 3)).astype(np.float32)
    x[:, :, 2] = np.abs(x[:, :, 2])
    aux = np.column_stack([rng.normal(16, 1, 12), rng.uniform(0.1, 1, 12), rng.uniform(-1, 2, 12)])
    lengths = np.repeat(np.array([50, 57, 100, 120, 199, 200], np.int32), 2)  # buckets and between
    windows = Windows(x, aux.astype(np.float32), lengths, np.array(["o"] * 12, object))
    classifier = load_bundle(clf_path)  # as `varstream train` does: the k-NN head, then save and export
    classifier.novelty_head = fit_knn_head(classifier, windows, windows, k=3)
    save_bundle(classifier, clf_path)
    for path in (clf_path, nov_path):
        bundle = load_bundle(path)
        section = export_onnx(bundle, path)
        assert section["lengths"] == [50, 100, 150, 200]
        reference, served = bundle.predict(windows), OnnxBundle(path).predict(windows)
        np.testing.assert_allclose(served.proba, reference.proba, atol=PROBA_ATOL)
        if reference.energy is not None:
            np.testing.assert_allclose(served.energy, reference.energy, rtol=ENERGY_RTOL, atol=ENERGY_ATOL)
    served = OnnxBundle(clf_path).predict(windows).novelty_score
    np.testing.assert_allclose(
        served, classifier.predict(windows).novelty_score, rtol=SCORE_RTOL, atol=SCORE_ATOL
    )
    assert np.isfinite(served).all()


@pytest.mark.parametrize("bucket", BUCKETS)
def test_onnx_embedding_output_matches_torch(real_windows, bucket) -> None:
    """The export's `embedding` output of crts-itcn, whose k-NN head the plugin serves, is the torch model's
    `embed`, at every length."""
    import onnxruntime
    import torch

    from models.itcn import window_tensors

    windows = Windows.concatenate(real_windows[bucket])
    bundle = load_bundle(DEFAULT_NOVELTY_BUNDLE)
    x, aux = window_tensors(windows.x[:, :bucket], windows.aux)
    with torch.inference_mode():
        embedding, logits = bundle.model.embed(x, aux)
        np.testing.assert_allclose(logits.numpy(), bundle.model(x, aux).numpy(), atol=1e-5)
    files = json.loads((DEFAULT_NOVELTY_BUNDLE / "metadata.json").read_text())["onnx"]["files"]
    for graph in (str(bucket), "any"):  # the bucket's own graph, and the dynamic-length one
        session = onnxruntime.InferenceSession(str(DEFAULT_NOVELTY_BUNDLE / files["classifier"][graph]))
        served = session.run(["embedding"], {"x": x.numpy(), "aux": aux.numpy()})[0]
        assert served.shape == tuple(embedding.shape) == (len(windows), bundle.novelty_head.bank.shape[1])
        np.testing.assert_allclose(served, embedding.numpy(), atol=1e-5)


def test_a_bundle_without_export_is_named_with_the_command_that_fixes_it(tmp_path) -> None:
    clf_path, _ = make_untrained_bundles(tmp_path)
    with pytest.raises(BundleFormatError, match="varstream export-onnx"):
        OnnxBundle(clf_path)
    with pytest.raises(BundleError, match="export-onnx"):
        InferenceRuntime(InferenceConfig(device="cpu", engine="onnx", classifier_bundle=str(clf_path)))
    # "auto" falls back to torch (installed here) for bundles without an export
    runtime = InferenceRuntime(
        InferenceConfig(device="cpu", engine="auto", classifier_bundle=str(clf_path), novelty_bundle="none")
    )
    assert runtime.engine == "torch"


def test_auto_serves_with_onnx_runtime_on_cpu() -> None:
    assert resolve_engine("auto", "cpu", has_onnx=True) == "onnx"
    assert resolve_engine("torch", "cpu", has_onnx=True) == "torch"
    with pytest.raises(BundleError, match="one of auto, onnx, torch"):
        resolve_engine("tensorrt", "cpu", has_onnx=True)


def test_a_per_length_export_is_refused_for_windows_of_any_length(tmp_path) -> None:
    """An export made before the dynamic-length graph, on a bundle whose young windows keep every point:
    refused when loaded, with the command that fixes it, not mid-stream at the first young object."""
    path = tmp_path / "bundle"
    shutil.copytree(DEFAULT_CLASSIFIER_BUNDLE, path)
    document = json.loads((path / "metadata.json").read_text())
    assert document["window"]["short_window"] == "all"
    del document["onnx"]["files"]["classifier"]["any"]
    (path / "metadata.json").write_text(json.dumps(document))
    with pytest.raises(BundleFormatError, match="varstream export-onnx"):
        OnnxBundle(path)
