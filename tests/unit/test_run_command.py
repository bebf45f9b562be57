"""`varstream run` tells an operator what is wrong, in one line, with exit code 2."""

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "broker", "run", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_unreachable_broker_fails_fast_with_the_address():
    started = time.monotonic()
    result = run(
        "--bootstrap-servers", "127.0.0.1:1", "--set", "kafka.connect_timeout_s=2", "--metrics-port", "0"
    )
    assert result.returncode == 2
    assert "cannot reach Kafka at kafka.bootstrap_servers = '127.0.0.1:1'" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 60


def test_unknown_key_names_the_key(tmp_path):
    config = tmp_path / "v.toml"
    config.write_text("[kafka]\nbootstrap = 'x:1'\n")
    result = run("--config", str(config))
    assert result.returncode == 2
    assert "unknown key kafka.bootstrap" in result.stderr and "bootstrap_servers" in result.stderr


def test_print_config_shows_the_effective_settings(tmp_path):
    result = run(
        "--print-config", "--input-topic", "a", "--input-topic", "b", "--set", "trigger.min_points=70"
    )
    assert result.returncode == 0, result.stderr
    assert '"input_topics": [\n      "a",\n      "b"\n    ]' in result.stdout
    assert '"min_points": 70' in result.stdout
