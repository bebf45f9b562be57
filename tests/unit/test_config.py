import pytest

from broker.config import load_config
from broker.errors import ConfigError


def test_defaults_are_valid():
    cfg = load_config(environ={})
    assert cfg.kafka.delivery == "at-least-once"
    assert cfg.trigger.min_points == 50


def test_file_then_env_then_overrides(tmp_path):
    path = tmp_path / "v.toml"
    path.write_text(
        '[kafka]\nbootstrap_servers = "a:1"\ninput_topics = ["x", "y"]\n[trigger]\nmin_points = 80\n'
    )
    env = {"VARSTREAM_TRIGGER__MIN_POINTS": "90", "VARSTREAM_KAFKA__INPUT_TOPICS": "p, q"}
    cfg = load_config(path, overrides={"trigger.min_points": 100}, environ=env)
    assert cfg.kafka.bootstrap_servers == "a:1"
    assert cfg.kafka.input_topics == ["p", "q"]
    assert cfg.trigger.min_points == 100
    assert load_config(path, environ=env).trigger.min_points == 90
    assert load_config(path, environ={}).trigger.min_points == 80


def test_yaml_is_accepted(tmp_path):
    path = tmp_path / "v.yaml"
    path.write_text("store:\n  path: /tmp/x.sqlite\n  max_objects: 10\n")
    cfg = load_config(path, environ={})
    assert cfg.store.max_objects == 10


@pytest.mark.parametrize(
    "text, message",
    [
        ("[kafak]\nx = 1\n", "unknown section [kafak]"),
        ("[kafka]\nbootstrap = 'a'\n", "unknown key kafka.bootstrap"),
        ("[kafka]\ndelivery = 'twice'\n", "kafka.delivery = 'twice' is invalid"),
        ("[trigger]\nmin_points = 'many'\n", "trigger.min_points = 'many' is not a valid int"),
        ("[trigger]\nmin_points = 2.5\n", "not a valid int"),
        ("[kafka\n", "cannot be parsed"),
    ],
)
def test_bad_config_names_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(path, environ={})


def test_unknown_env_key_is_an_error():
    with pytest.raises(ConfigError, match="VARSTREAM_STORE__PAHT"):
        load_config(environ={"VARSTREAM_STORE__PAHT": "x"})


def test_missing_file():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("/nonexistent/varstream.toml", environ={})


def test_period_threads_is_a_count_or_auto_capped_by_the_usable_cores(monkeypatch):
    import os

    assert load_config(environ={"VARSTREAM_PERIOD__THREADS": "3"}).period.thread_count() == 3
    auto = load_config(overrides={"period.threads": "auto"}, environ={}).period
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(2)), raising=False)
    assert auto.thread_count() == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(64)), raising=False)
    assert auto.thread_count() == 8
    for bad in (0, "many", True):
        with pytest.raises(ConfigError, match=r"period\.threads"):
            load_config(overrides={"period.threads": bad}, environ={})
