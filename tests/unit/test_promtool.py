"""The Prometheus config and rules pass promtool, and every alert has a firing and a quiet unit test."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.fixtures.prometheus import PROMETHEUS_CONFIG, RULES, RULES_TEST, rule_expressions

SEVERITIES = {"warning", "critical"}


def promtool(*args: str) -> subprocess.CompletedProcess:
    executable = shutil.which("promtool")
    if executable is None:
        pytest.fail("promtool not found on PATH: install Debian's prometheus package (make prometheus)")
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", str(PROMETHEUS_CONFIG)),
        ("check", "rules", str(RULES)),
        ("test", "rules", str(RULES_TEST)),
    ],
    ids=["check-config", "check-rules", "test-rules"],
)
def test_promtool_accepts(args: tuple[str, ...]) -> None:
    result = promtool(*args)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output


def test_every_alert_is_actionable() -> None:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
            assert rule["annotations"]["summary"].strip(), rule["alert"]
            assert len(rule["annotations"]["description"]) > 100, f"{rule['alert']}: say what to do"


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(RULES_TEST.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {rule.name for rule in rule_expressions() if rule.kind == "alert"}
    assert alerts - firing == set(), "alerts never shown to fire"
    assert alerts - quiet == set(), "alerts never shown to stay quiet"
    assert (firing | quiet) - alerts == set(), "tests of alerts that do not exist"


def test_the_rules_file_is_the_one_the_config_loads() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert [PROMETHEUS_CONFIG.parent / f for f in config["rule_files"]] == [RULES]
    tests = yaml.safe_load(RULES_TEST.read_text())
    assert [PROMETHEUS_CONFIG.parent / f for f in tests["rule_files"]] == [RULES]
