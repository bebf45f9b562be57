"""The plugin's import tree stays lean, and a command that needs an extra says which one.

Each check runs in a fresh interpreter, since this test process has long imported torch and pandas.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from broker.cli import COMMANDS, EXTRA_OF, missing_extra
from tests.fixtures.data import DATA

REPO = Path(__file__).resolve().parents[2]
TRAINING_STACK = ("torch", "pandas", "matplotlib", "sklearn", "feets", "tqdm", "onnx", "threadpoolctl")

# Makes the given top-level packages unimportable, as in an install without the [train] extra.
BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Block())
"""


def python(code: str, blocked: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    prelude = f"BLOCKED = {set(blocked)!r}\n{BLOCKER}" if blocked else ""
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


def test_the_run_path_never_imports_the_training_stack(tmp_path) -> None:
    """`varstream run` as far as serving: its command module, the pipeline and both models loaded."""
    done = python(f"""
        import json, sys
        from broker import cli
        assert cli.main(["run", "--print-config", "--bootstrap-servers", "k:9092", "--input-topic", "a"]) == 0
        from broker.pipeline import Pipeline
        from broker.config import InferenceConfig
        from broker.runtime import InferenceRuntime
        runtime = InferenceRuntime(InferenceConfig(device="cpu", engine="auto"))
        top = {{name.partition(".")[0] for name in sys.modules}}
        print(json.dumps({{
            "engine": runtime.engine,
            "training": sorted(top & set({TRAINING_STACK!r})),
            "offline": sorted(n for n in sys.modules if n.startswith("broker.offline")),
        }}))
    """)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"engine": "onnx", "training": [], "offline": []}


def test_a_command_that_needs_the_train_extra_says_so_in_one_line(tmp_path) -> None:
    done = python(
        f"""
        import sys
        from broker.cli import main
        sys.exit(main(["export-onnx", "--bundle", {str(tmp_path)!r}]))
        """,
        blocked=("torch",),
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "varstream export-onnx needs the [train] extra (torch is not installed): "
        "pip install 'varstream[train]'"
    )


def test_the_torch_engine_without_torch_names_the_extra() -> None:
    done = python(
        """
        import sys
        from broker.config import InferenceConfig
        from broker.errors import BundleError
        from broker.runtime import InferenceRuntime
        try:
            InferenceRuntime(InferenceConfig(device="cpu", engine="torch"))
        except BundleError as err:
            print(err)
        """,
        blocked=("torch",),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "inference.engine = 'torch' needs torch: pip install 'varstream[train]'"


def test_extra_hints_only_for_packages_of_an_extra() -> None:
    err = ModuleNotFoundError("No module named 'pandas.core'", name="pandas.core")
    assert "[train]" in str(missing_extra("report", err))
    assert missing_extra("run", ModuleNotFoundError("x", name="confluent_kafka")) is None
    assert set(EXTRA_OF.values()) == {"train"}
    assert "export-onnx" in COMMANDS


def test_publishing_real_alerts_needs_nothing_of_the_train_extra(tmp_path) -> None:
    """Operators publish alert files from the plugin's own install: no tqdm, torch or pandas there."""
    samples = DATA / "alert_samples" / "ztf_official"
    done = python(
        f"""
        import sys
        from broker.cli import main
        sys.exit(main(["publish", {str(samples)!r}, "--out", {str(tmp_path)!r}, "--to-folder",
                       "--as-fast-as-possible", "--no-progress"]))
        """,
        blocked=TRAINING_STACK,
    )
    assert done.returncode == 0, done.stderr
    assert "published 4 alerts of 4 objects" in done.stdout
    assert len(list((tmp_path / "alerts").iterdir())) == 4
