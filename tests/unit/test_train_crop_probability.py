"""`varstream train --crop-probability`: how often training windows are cut to a young object's length."""

from __future__ import annotations

import pytest

from broker.cli import main as varstream
from broker.offline.commands import train
from models.bundle import load_bundle
from models.train import TrainConfig
from tests.unit.test_train_ensemble import train_argv
from tests.unit.test_train_period_settings import (  # noqa: F401 (fixtures)
    restore_torch_threads,
    two_shape_csv,
)


def test_the_command_lines_default_is_the_training_default():
    assert TrainConfig.crop_probability == train.CROP_PROBABILITY


def test_the_probability_reaches_training_and_is_recorded(
    two_shape_csv,  # noqa: F811
    tmp_path,
    restore_torch_threads,  # noqa: F811
):
    default, never, always = tmp_path / "default", tmp_path / "never", tmp_path / "always"
    assert varstream(train_argv(two_shape_csv, default)) == 0
    assert varstream(train_argv(two_shape_csv, never, "--crop-probability", "0")) == 0
    assert varstream(train_argv(two_shape_csv, always, "--crop-probability", "1")) == 0
    records = [load_bundle(b).metadata["training"] for b in (default, never, always)]
    assert [r["crop_probability"] for r in records] == [0.3, 0.0, 1.0]
    # same seed and windows: cutting every window to a shorter bucket changes what the first epoch sees
    assert records[1]["history"][0]["train_loss"] != records[2]["history"][0]["train_loss"]


@pytest.mark.parametrize("value", ["1.5", "-0.1", "often"])
def test_a_value_outside_zero_to_one_is_refused(tmp_path, value, capsys):
    with pytest.raises(SystemExit) as stop:
        varstream(["train", "--data", "csv:x", "--out", str(tmp_path / "b"), "--crop-probability", value])
    assert stop.value.code == 2
    assert "a probability in [0, 1]" in capsys.readouterr().err
