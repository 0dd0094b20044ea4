"""The README's example outputs are what the tool prints today (docs/readme_examples.py)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

from tests.conftest import CORPUS

ROOT = Path(__file__).resolve().parent.parent


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("readme_examples",
                                                  ROOT / "docs" / "readme_examples.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["readme_examples"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _rounded(text: str) -> str:
    # a score's sixth decimal may move between CPUs; three are what a reader compares
    return re.sub(r"\d+\.\d{4,}", lambda m: f"{float(m.group()):.3f}", text)


def test_the_readme_has_generated_examples_of_each_kind() -> None:
    found = _generator().examples((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(found) >= 3
    assert any(ex.lang == "json" for ex in found)
    assert all(ex.body.strip() for ex in found)


def test_the_readme_examples_match_todays_output(real_index: Path) -> None:
    gen = _generator()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    stale = [ex.args for ex in gen.examples(readme)
             if _rounded(gen.expected(ex, real_index, CORPUS)) != _rounded(ex.body)]
    assert not stale, (f"README examples are stale: {stale}; "
                       "run `python docs/readme_examples.py` and review the diff")


def test_a_changed_output_is_reported_as_drift(real_index: Path) -> None:
    gen = _generator()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    doctored = readme.replace("· partial match ─╯", "· strong match ─╯", 1)
    if doctored == readme:
        doctored = readme.replace('"rank": 1', '"rank": 2', 1)
    assert doctored != readme
    assert gen.drifted(doctored, real_index, CORPUS)
