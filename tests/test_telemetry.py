"""crampqa runs offline: importing it turns onnxruntime's telemetry off before onnxruntime
loads, so no event store is written under ``~/.cache/Microsoft/DeveloperTools``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

STORE = Path(".cache") / "Microsoft" / "DeveloperTools"


def run_python(code: str, home: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_no_telemetry_store_is_written(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    run_python("import onnxruntime", bare)
    if not (bare / STORE).exists():
        pytest.skip("this onnxruntime build writes no telemetry store")
    home = tmp_path / "home"
    home.mkdir()
    run_python(
        "import os, crampqa\n"
        "assert os.environ['ORT_DISABLE_TELEMETRY'] == '1'\n"
        "from crampqa.scorer import PassageScorer\n"
        "print(PassageScorer.load().probabilities('calf cramps', ['Cramps at night.']))\n",
        home)
    assert not (home / STORE).exists(), sorted(p.name for p in (home / STORE).rglob("*"))
    assert not (home / ".cache" / "Microsoft").exists()
