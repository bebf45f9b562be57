"""`varstream train --period-settings v1|v2`: the windows' period search is written into the bundle, and the
plugin's runtime reads it back, new keys included, so alerts are folded with the search the model saw."""

from __future__ import annotations

import argparse
import csv
import dataclasses

import numpy as np
import pytest
import torch

from broker.cli import main as varstream
from broker.config import InferenceConfig
from broker.errors import ConfigError
from broker.offline.commands import settings, train
from broker.offline.commands.evaluate import add_novelty_rates
from broker.period import PeriodSearchConfig
from broker.runtime import InferenceRuntime
from models.bundle import load_bundle

SHAPES = {"sine": lambda phase: np.sin(2 * np.pi * phase), "saw": lambda phase: 2 * (phase % 1.0) - 1}


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    return parser.parse_args(["--data", "csv:x", "--out", "o", *argv])


def test_period_settings_default_to_the_shipped_search_and_name_v2():
    assert parse().period_settings == "v1"
    assert settings.period_config_named(parse().period_settings) == PeriodSearchConfig()
    v2 = parse("--period-settings", "v2").period_settings
    assert settings.period_config_named(v2) == PeriodSearchConfig.v2()
    with pytest.raises(SystemExit):
        parse("--period-settings", "v3")
    with pytest.raises(ConfigError, match="v3"):
        settings.period_config_named("v3")


@pytest.fixture
def two_shape_csv(tmp_path):
    """Eight sines and eight sawtooths (0.3-0.9 d, 150 points over 300 d), one CSV per object."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "csv"
    folder.mkdir()
    for label, shape in SHAPES.items():
        for i in range(8):
            period = rng.uniform(0.3, 0.9)
            t = np.sort(rng.uniform(0, 300, 150)) + 58000
            mag = 15 + 0.4 * shape(t / period) + rng.normal(0, 0.02, t.size)
            with (folder / f"{label}{i}.csv").open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["mjd", "mag", "err", "class"])
                writer.writerows([f"{a:.6f}", f"{b:.4f}", "0.02", label] for a, b in zip(t, mag, strict=True))
    return folder


@pytest.fixture
def restore_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_a_v2_bundle_carries_the_v2_search_into_the_runtime(two_shape_csv, tmp_path, restore_torch_threads):
    out = tmp_path / "bundle"
    argv = ["train", "--data", f"csv:{two_shape_csv}", "--time-col", "mjd", "--mag-col", "mag",
            "--err-col", "err", "--class-col", "class", "--min-class-count", "2", "--exclude",
            "--hidden", "4", "--depth", "5", "--epochs", "1", "--threads", "1", "--no-progress",
            "--period-settings", "v2", "--short-window", "all", "--out", str(out), "--cache-dir",
            str(tmp_path / "cache")]  # fmt: skip
    assert varstream(argv) == 0
    bundle = load_bundle(out)
    assert bundle.window["short_window"] == "all"
    assert bundle.period_search == dataclasses.asdict(PeriodSearchConfig.v2())
    assert bundle.period_search["peak_choice"] == "harmonic"
    assert bundle.period_search["min_period_days"] == 0.03
    runtime = InferenceRuntime(
        InferenceConfig(classifier_bundle=str(out), novelty_bundle="none", device="cpu", engine="onnx")
    )
    assert runtime.period_config == PeriodSearchConfig.v2()
    assert runtime.window_config.short_window == "all"


def test_novelty_rates_by_hand():
    # 4 known objects, 2 unseen; at p95 one known and both unseen are flagged (3 flagged, recall 1.0)
    novelty = {"n_seen": 4, "n_unseen": 2, "p95": {"n_flagged": 3, "recall": 1.0, "threshold": 95.0}}
    add_novelty_rates(novelty, np.array([1.0, 2.0, 3.0, 9.0]), np.array([5.0, 10.0]))
    assert novelty["p95"]["known_flagged_fraction"] == 0.25
    assert novelty["roc_auc"] == pytest.approx(7 / 8)  # 7 of 8 (unseen, known) pairs ranked right


def test_bundles_differ_in_settings_only_where_the_configurations_do():
    """A retrain records every period setting; a bundle written before `candidates` existed leaves it out.
    At its default value that is the same search, so the two may serve together; another value may not."""
    from types import SimpleNamespace

    from broker.errors import BundleError
    from broker.runtime import differing_settings, require_same_settings

    window = {"length": 200, "min_length": 50, "buckets": [50, 100, 150, 200], "min_remainder": 50}
    older = PeriodSearchConfig.v2().fingerprint()
    assert "candidates" not in older  # at its legacy value: left out, as in the shipped bundle
    newer = dataclasses.asdict(PeriodSearchConfig.v2())

    def bundle(period_search, **window_changes):
        return SimpleNamespace(window=window | window_changes, period_search=period_search)

    assert differing_settings(bundle(older), bundle(newer)) == []
    assert differing_settings(bundle(older), bundle(newer | {"candidates": 8})) == ["period_search"]
    assert differing_settings(bundle(older), bundle(newer, min_length=100)) == ["window"]
    # short_window came later too: unrecorded is "bucket"; "all" folds young objects otherwise
    assert differing_settings(bundle(older), bundle(newer, short_window="bucket")) == []
    assert differing_settings(bundle(older), bundle(newer, short_window="all")) == ["window"]
    require_same_settings(bundle(older), bundle(newer))  # the plugin and evaluate serve these together
    with pytest.raises(BundleError, match="different period_search settings"):
        require_same_settings(bundle(older), bundle(newer | {"candidates": 8}))
