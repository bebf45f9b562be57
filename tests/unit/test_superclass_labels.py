"""Labels that name only a superclass (EROS-1's binary / rr_lyrae / ...) training a class-level network."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from broker.cli import main as varstream
from broker.config import InferenceConfig
from broker.offline.commands import train
from broker.period import PeriodSearchConfig
from broker.runtime import InferenceRuntime
from models import hierarchical
from models.bundle import BUNDLES_DIR, load_bundle
from models.taxonomy import superclass_label, superclass_of
from models.train import TrainConfig
from tests.unit.test_train_ensemble import train_argv
from tests.unit.test_train_period_settings import (
    SHAPES,
    restore_torch_threads,  # noqa: F401 (fixture)
)


def write_archive(folder, labels: dict[str, str], seed: int, n: int = 8) -> None:
    """n objects per label (label -> shape), one CSV each (id: its stem), 150 points over 300 d, 0.3-0.9 d
    periods."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    for label, shape in labels.items():
        for i in range(n):
            period = rng.uniform(0.3, 0.9)
            t = np.sort(rng.uniform(0, 300, 150)) + 58000
            mag = 15 + 0.4 * SHAPES[shape](t / period) + rng.normal(0, 0.02, t.size)
            with (folder / f"{label}{i}.csv").open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["mjd", "mag", "err", "class"])
                writer.writerows([f"{a:.6f}", f"{b:.4f}", "0.02", label] for a, b in zip(t, mag, strict=True))


@pytest.fixture
def two_archives(tmp_path):
    """CRTS-like class labels (RRab: sawtooth, EW: sine) and EROS-1-like superclass labels, same shapes."""
    fine, coarse = tmp_path / "fine", tmp_path / "coarse"
    write_archive(fine, {"RRab": "saw", "EW": "sine"}, seed=0)
    write_archive(coarse, {"rr_lyrae": "saw", "binary": "sine"}, seed=1)
    return fine, coarse


def argv(fine, coarse, out, *extra: str) -> list[str]:
    """The tiny training of `train_argv` on the class-labelled archive, plus the superclass-labelled one."""
    return train_argv(fine, out, "--data", f"csv:{coarse}", *extra)


def test_the_command_lines_default_weight_is_the_training_default():
    assert TrainConfig.superclass_weight == train.SUPERCLASS_WEIGHT


def test_a_superclass_marker_maps_back_to_its_superclass():
    assert superclass_label("rr_lyrae") == "superclass:RR_Lyrae"
    assert superclass_of(superclass_label("binary")) == "eclipsing"
    with pytest.raises(ValueError, match="no superclass"):
        superclass_label("sine")


def test_the_loss_is_minus_log_of_the_superclass_probability():
    classes = ["Cep_II", "EW", "RRab", "RRc"]
    markers = ["superclass:RR_Lyrae", "superclass:eclipsing"]
    log_mask = hierarchical.member_log_mask(classes, markers)
    logits = torch.tensor([[0.5, -1.0, 2.0, 0.3], [1.0, 0.2, -0.4, 0.0]])
    p = torch.softmax(logits, dim=1)
    expected = torch.stack([-torch.log(p[0, 2] + p[0, 3]), -torch.log(p[1, 1])])
    got = hierarchical.superclass_nll(logits, log_mask[torch.tensor([0, 1])])
    assert torch.allclose(got, expected, atol=1e-6)
    with pytest.raises(ValueError, match="have no class"):
        hierarchical.member_log_mask(classes, ["superclass:LPV"])


def test_a_batch_of_class_labels_alone_gets_the_plain_cross_entropy():
    torch.manual_seed(0)
    logits, embedding = torch.randn(6, 3), torch.randn(6, 4)
    y, weight = torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([1.0, 2.0, 0.5])
    log_mask = hierarchical.member_log_mask(["EW", "RRab", "RRc"], ["superclass:RR_Lyrae"])
    mixed = hierarchical.mixed_loss(logits, embedding, y, weight, log_mask, 0.7, 0.0, 0.1)
    assert torch.allclose(mixed, torch.nn.functional.cross_entropy(logits, y, weight=weight))


def test_superclass_labelled_objects_train_and_are_scored_one_level_up(
    two_archives,
    tmp_path,
    capsys,
    restore_torch_threads,  # noqa: F811
):
    fine, coarse = two_archives
    out, lighter = tmp_path / "bundle", tmp_path / "lighter"
    assert varstream(argv(fine, coarse, out, "--superclass-labels", f"csv:{coarse}")) == 0
    assert varstream(argv(fine, coarse, lighter, "--superclass-labels", "csv:" + str(coarse),
                          "--superclass-weight", "0.2")) == 0  # fmt: skip
    bundle = load_bundle(out)
    assert bundle.class_names == ["EW", "RRab"]  # the coarse labels are no classes
    data = bundle.metadata["data"]
    assert [a["superclass_only"] for a in data["archives"]] == [False, True]
    coarse_ids = {f"{label}{i}" for label in ("rr_lyrae", "binary") for i in range(8)}
    split = data["split"]
    # they train, those split into val or calibration too; the test split's are held out
    assert not coarse_ids & set(split["val_ids"] + split["test_ids"] + split["calibration_ids"])
    held_out = bundle.metadata["test_metrics_superclass_labels"]
    assert held_out["n_objects"] == len(coarse_ids - set(split["train_ids"])) > 0
    assert set(held_out["superclasses"]) == {"RR_Lyrae", "eclipsing"}
    assert bundle.metadata["training"]["superclass_weight"] == 1.0
    # the weight reaches the loss: same seed and windows, another first-epoch loss
    first = [load_bundle(b).metadata["training"]["history"][0]["train_loss"] for b in (out, lighter)]
    assert first[0] != first[1]
    # `evaluate --split test` on that archive scores the same held-out objects one level up
    report = tmp_path / "report"
    assert varstream(evaluate_argv(out, coarse, report, "--split", "test", "--novelty-bundle", str(out))) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["n_objects"] == held_out["n_objects"]
    assert metrics["superclass"]["accuracy"] == pytest.approx(held_out["accuracy"])
    # its labels are known superclasses, not unseen classes: novelty scores them one level up only
    assert "novelty" not in metrics and "novelty_head" not in metrics
    assert metrics["superclass"]["novelty"]["n_seen"] == held_out["n_objects"]
    assert metrics["superclass"]["novelty"]["n_unseen"] == 0
    # the other archive (same format, class labels) is scored at class level, as any
    fine_report = tmp_path / "fine_report"
    no_novelty = ("--split", "test", "--novelty-bundle", "none")
    assert varstream(evaluate_argv(out, fine, fine_report, *no_novelty)) == 0
    assert json.loads((fine_report / "metrics.json").read_text())["n_objects_classified"] > 0
    # the head and temperatures refit on the splits training made: the same bank, the same tables
    refit = tmp_path / "refit"
    shutil.copytree(out, refit)
    assert varstream(["fit-novelty-head", "--bundle", str(refit), "--data", f"csv:{fine}", "--data",
                      f"csv:{coarse}", *COLUMNS, "--threads", "1", "--no-progress", "--cache-dir",
                      str(tmp_path / "cache")]) == 0  # fmt: skip
    heads = [load_bundle(b).novelty_head for b in (out, refit)]
    assert heads[1].info["bank_windows"] == heads[0].info["bank_windows"]
    np.testing.assert_allclose(heads[1].bank, heads[0].bank, atol=1e-6)
    assert heads[1].thresholds == pytest.approx(heads[0].thresholds)
    # their validation objects trained
    assert varstream(evaluate_argv(out, coarse, report, "--split", "val", "--novelty-bundle", "none")) == 2
    assert "only its test objects were held out" in capsys.readouterr().err


COLUMNS = ("--time-col", "mjd", "--mag-col", "mag", "--err-col", "err", "--class-col", "class")


def evaluate_argv(bundle, archive, out, *extra: str) -> list[str]:
    return ["evaluate", "--bundle", str(bundle), "--data", f"csv:{archive}", *COLUMNS, "--threads", "1",
            "--no-progress", "--out", str(out), "--cache-dir", str(out.parent / "cache"), *extra]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--superclass-labels", "eros"], "no --data archive has that format or spec"),
        (["--superclass-labels", "csv", "--kind", "novelty"], "applies to one classifier trained here"),
    ],
)
def test_bad_choices_are_refused(two_archives, tmp_path, extra, message, capsys):
    fine, coarse = two_archives
    assert varstream(argv(fine, coarse, tmp_path / "b", *extra)) == 2
    assert message in capsys.readouterr().err


def test_labels_the_taxonomy_does_not_know_are_refused(tmp_path, capsys):
    fine, coarse = tmp_path / "fine", tmp_path / "coarse"
    write_archive(fine, {"RRab": "saw", "EW": "sine"}, seed=0)
    write_archive(coarse, {"wiggly": "saw"}, seed=1)
    assert varstream(argv(fine, coarse, tmp_path / "b", "--superclass-labels", f"csv:{coarse}")) == 2
    assert "labels ['wiggly'] have no superclass" in capsys.readouterr().err


def test_superclass_labels_too_few_to_train_are_refused_not_dropped(tmp_path, capsys):
    fine, coarse = tmp_path / "fine", tmp_path / "coarse"
    write_archive(fine, {"RRab": "saw", "EW": "sine"}, seed=0)
    write_archive(coarse, {"rr_lyrae": "saw"}, seed=1, n=1)  # under --min-class-count 2
    assert varstream(argv(fine, coarse, tmp_path / "b", "--superclass-labels", f"csv:{coarse}")) == 2
    assert "need a superclass label and 2 class labels with --min-class-count 2" in capsys.readouterr().err


def test_the_shipped_crts_eros_bundle_serves_beside_the_default_novelty():
    """models/bundles/crts-eros-itcn-supcon: CRTS classes, trained with EROS-1's labels one level up."""
    shipped = BUNDLES_DIR / "crts-eros-itcn-supcon"
    bundle = load_bundle(shipped)
    assert bundle.class_names == load_bundle(BUNDLES_DIR / "crts-itcn-supcon").class_names
    data = bundle.metadata["data"]
    assert [(a["format"], a["superclass_only"]) for a in data["archives"]] == [
        ("crts", False),
        ("eros", True),
    ]
    assert bundle.metadata["training"]["superclass_weight"] == 0.3
    held_out = bundle.metadata["test_metrics_superclass_labels"]
    assert held_out["n_objects"] == 438 and held_out["accuracy"] > 0.8
    # the plugin serves it (ONNX) with crts-itcn's head, which needs the same period search and windows
    runtime = InferenceRuntime(InferenceConfig(classifier_bundle=str(shipped), device="cpu", engine="onnx"))
    assert runtime.period_config == PeriodSearchConfig.v2()
    served = InferenceRuntime(InferenceConfig(device="cpu", engine="onnx"))
    assert runtime.info["novelty_name"] == served.info["novelty_name"]  # crts-itcn's head, as by default


def test_held_out_objects_of_an_archive_with_labels_the_taxonomy_lacks_are_refused():
    """Not the archive the bundle trained on one level up (training refuses such labels): which objects it
    held out cannot be told, so evaluate stops with the labels named."""
    from types import SimpleNamespace

    import pandas as pd

    from broker.errors import ConfigError
    from broker.offline.training_sets import held_out_superclass_objects

    dataset = SimpleNamespace(objects=pd.DataFrame({"label": ["rr_lyrae", "wiggly"]}))
    with pytest.raises(ConfigError, match=r"labels \['wiggly'\] have no superclass"):
        held_out_superclass_objects(dataset, SimpleNamespace(name="b"))
