"""`varstream train --members N` / `--members-from`: a deep ensemble bundle, trained in one go or built from
member bundles trained alone with the same seeds; both give the same network, served by ONNX Runtime."""

from __future__ import annotations

import numpy as np

from broker import folding
from broker.cli import main as varstream
from broker.offline.commands import settings, train
from models import ensemble
from models.bundle import load_bundle
from models.onnx_serving import OnnxBundle
from tests.unit.test_bundle import synthetic_windows
from tests.unit.test_train_period_settings import (  # noqa: F401 (fixtures)
    restore_torch_threads,
    two_shape_csv,
)


def train_argv(csv_folder, out, *extra: str) -> list[str]:
    return ["train", "--data", f"csv:{csv_folder}", "--time-col", "mjd", "--mag-col", "mag",
            "--err-col", "err", "--class-col", "class", "--min-class-count", "2", "--exclude",
            "--hidden", "4", "--depth", "5", "--epochs", "1", "--threads", "1", "--no-progress",
            "--out", str(out), "--cache-dir", str(out.parent / "cache"), *extra]  # fmt: skip


def test_choices_spelled_out_for_the_command_line_are_the_ensembles():
    assert train.ENSEMBLE_COMBINES == ensemble.COMBINES
    assert settings.SHORT_WINDOWS == folding.SHORT_WINDOWS
    assert train.ENSEMBLE_EMBEDDINGS == ensemble.EMBEDDINGS


def test_members_trained_together_or_apart_make_the_same_ensemble(
    two_shape_csv,  # noqa: F811
    tmp_path,
    restore_torch_threads,  # noqa: F811
):
    together = tmp_path / "together"
    assert varstream(train_argv(two_shape_csv, together, "--members", "2", "--seed", "3")) == 0
    apart = []
    for seed in (3, 4):
        apart.append(tmp_path / f"seed{seed}")
        assert varstream(train_argv(two_shape_csv, apart[-1], "--seed", str(seed))) == 0
    built = tmp_path / "built"
    argv = train_argv(two_shape_csv, built, "--members-from", *map(str, apart))
    assert varstream(argv) == 0

    bundle, rebuilt = load_bundle(together), load_bundle(built)
    assert bundle.metadata["arch"] == rebuilt.metadata["arch"] == ensemble.ARCH
    hp = bundle.metadata["hyperparameters"]
    assert hp["members"] == 2 and hp["seeds"] == [3, 4] and hp["member_arch"] == "itcn"
    assert hp["combine"] == "logits" and hp["embedding"] == "concat-unit" and hp["hidden"] == 4
    assert [m["seed"] for m in bundle.metadata["training"]["members"]] == [3, 4]
    assert rebuilt.metadata["hyperparameters"] == hp
    state, again = bundle.model.state_dict(), rebuilt.model.state_dict()
    assert state.keys() == again.keys()
    for key in state:
        np.testing.assert_array_equal(state[key].numpy(), again[key].numpy(), err_msg=key)
    # the post-hoc parts fit on the joined embedding, and ONNX Runtime serves the ensemble as torch does
    assert bundle.novelty_head.bank.shape[1] == 2 * 4
    assert bundle.metadata["test_metrics"]["n_objects_classified"] > 0
    windows = synthetic_windows(8, lengths=np.array([50, 100, 150, 200] * 2), classes=("sine", "sawtooth"))
    reference, served = bundle.predict(windows), OnnxBundle(together).predict(windows)
    np.testing.assert_allclose(served.proba, reference.proba, atol=1e-5)


def test_members_from_another_split_are_refused(
    two_shape_csv,  # noqa: F811
    tmp_path,
    restore_torch_threads,  # noqa: F811
    capsys,
):
    member = tmp_path / "member"
    assert varstream(train_argv(two_shape_csv, member, "--split-seed", "1")) == 0
    assert varstream(train_argv(two_shape_csv, tmp_path / "ens", "--members-from", str(member))) == 2
    assert "ids differ from this run's split" in capsys.readouterr().err
    assert not (tmp_path / "ens").exists()
