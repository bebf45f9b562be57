"""The benchmark-only `[run] mode` switch: "full" by default, "ceiling" accepted, anything else refused."""

from __future__ import annotations

import pytest

from broker.config import load_config
from broker.errors import ConfigError


def test_full_is_the_default():
    assert load_config(environ={}).run.mode == "full"


def test_ceiling_is_accepted_from_the_environment():
    assert load_config(environ={"VARSTREAM_RUN__MODE": "ceiling"}).run.mode == "ceiling"


def test_an_unknown_mode_names_the_valid_ones():
    with pytest.raises(ConfigError, match=r"run.mode = 'fast'.*\('full', 'ceiling'\)"):
        load_config(overrides={"run.mode": "fast"}, environ={})
