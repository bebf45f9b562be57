"""`varstream train --ignore-aux`: auxiliary inputs the classifier never sees (e.g. a survey's zero point)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from broker.cli import main as varstream
from broker.offline.commands import train
from models import itcn
from models.bundle import load_bundle
from models.train import aux_statistics
from models.windows import AUX, Windows
from tests.unit.test_train_ensemble import train_argv
from tests.unit.test_train_period_settings import (  # noqa: F401 (fixtures)
    restore_torch_threads,
    two_shape_csv,
)


def test_the_command_lines_choices_are_the_window_aux_inputs():
    assert train.AUX_INPUTS == AUX


def _windows(n: int = 6) -> Windows:
    rng = np.random.default_rng(1)
    aux = np.column_stack([rng.uniform(12, 19, n), rng.uniform(0.1, 0.6, n), rng.uniform(-1, 2, n)])
    x = rng.normal(size=(n, 200, 3)).astype(np.float32)
    return Windows(x, aux.astype(np.float32), np.full(n, 200), np.arange(n).astype(str), None)


def _inputs(windows: Windows) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, aux) as the network takes them."""
    x = torch.as_tensor(windows.x[:, :, list(itcn.INPUT_CHANNELS)]).transpose(1, 2)
    return x, torch.as_tensor(windows.aux)


def test_an_ignored_input_changes_nothing_the_network_computes():
    windows = _windows()
    torch.manual_seed(0)
    model = itcn.build_classifier("itcn", 3, hidden=4, depth=5).eval()
    x, aux = _inputs(windows)
    brighter = aux + torch.tensor([-4.0, 0.0, 0.0])  # another survey's zero point: 4 mag brighter
    model.set_aux_scaling(*aux_statistics(windows, ["mean_mag"]))
    with torch.no_grad():
        assert torch.allclose(model(x, aux), model(x, brighter), atol=1e-6)
    model.set_aux_scaling(*aux_statistics(windows))  # seen: the logits move
    with torch.no_grad():
        assert not torch.allclose(model(x, aux), model(x, brighter), atol=1e-3)


def test_the_other_inputs_keep_their_standardisation():
    windows = _windows()
    mean, std = aux_statistics(windows, ["mean_mag"])
    assert np.allclose(std[1:], windows.aux[:, 1:].std(axis=0))
    assert np.allclose(mean, windows.aux.mean(axis=0))
    with pytest.raises(ValueError, match="unknown auxiliary inputs"):
        aux_statistics(windows, ["colour"])


def test_the_bundle_records_and_serves_the_ignored_input(
    two_shape_csv,  # noqa: F811
    tmp_path,
    restore_torch_threads,  # noqa: F811
):
    out = tmp_path / "blind"
    assert varstream(train_argv(two_shape_csv, out, "--ignore-aux", "mean_mag")) == 0
    bundle = load_bundle(out)
    assert bundle.metadata["training"]["ignored_aux"] == ["mean_mag"]
    assert float(bundle.model.aux_std[0]) == pytest.approx(1e12)
    x, aux = _inputs(_windows())
    with torch.no_grad():
        shifted = bundle.model(x, aux + torch.tensor([3.0, 0.0, 0.0]))
        assert torch.allclose(bundle.model(x, aux), shifted, atol=1e-6)


def test_an_unknown_input_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        varstream(["train", "--data", "csv:x", "--out", str(tmp_path / "b"), "--ignore-aux", "colour"])
    assert stop.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [["--kind", "novelty"], ["--members-from", "some-bundle"]])
def test_it_is_refused_where_no_classifier_is_trained_here(tmp_path, extra, capsys):
    argv = ["train", "--data", "csv:x", "--out", str(tmp_path / "b"), "--ignore-aux", "mean_mag", *extra]
    assert varstream(argv) == 2
    assert "--ignore-aux applies to a classifier trained here" in capsys.readouterr().err
