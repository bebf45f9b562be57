"""Reproducible installs: requirements.lock pins every dependency, and make (hence CI) installs with it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned() -> dict[str, set[str]]:
    """package -> pinned versions (one per environment marker branch) in requirements.lock."""
    pins: dict[str, set[str]] = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^ ;]+)\s*(;.*)?", line)
            assert match, f"requirements.lock line is not name==version[; marker]: {line!r}"
            pins.setdefault(normalise(match[1]), set()).add(match[2])
    return pins


def declared() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [*project["dependencies"], *(req for reqs in extras.values() for req in reqs)]


def test_the_lock_pins_every_declared_dependency() -> None:
    pins = pinned()
    for requirement in declared():
        name = normalise(re.match(r"[A-Za-z0-9_.-]+", requirement)[0])
        assert name in pins, f"{name} (pyproject.toml) is not in requirements.lock: refresh it (README)"


def test_the_plugin_needs_no_training_package() -> None:
    plugin = {
        normalise(re.match(r"[A-Za-z0-9_.-]+", r)[0])
        for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    assert not plugin & {"torch", "pandas", "scikit-learn", "matplotlib", "feets", "tqdm", "onnx"}
    assert {"onnxruntime", "confluent-kafka", "fastavro", "nifty-ls", "prometheus-client"} <= plugin


def test_make_and_ci_install_with_the_lock() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^LOCK := requirements\.lock$", makefile, re.M)
    (install,) = re.findall(r"pip install .*-e .*", makefile)
    assert "-c $(LOCK)" in install and "'.[train,dev]'" in install
    for target in ("demo", "test", "bench"):
        assert re.search(rf"^{target}: \$\(VENV\)/\.installed", makefile, re.M), target
    assert re.search(r"^\$\(VENV\)/\.installed: .*\$\(LOCK\)", makefile, re.M)  # a new lock reinstalls
    assert "make test" in (REPO / ".ci" / "run").read_text()
