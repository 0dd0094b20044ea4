"""``crampqa serve`` refuses to start, in one line and before announcing anything, when
the answer scorer is damaged (exit 6, a model error)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from crampqa import scorer as scorer_module
from crampqa.config import MODEL_NAME
from crampqa.embedding import EMBEDDERS
from crampqa.scorer import MODEL_FILE, SCORER_DIR, TOKENIZER_FILE
from crampqa.web.launch import free_port
from tests.conftest import FakeEmbedder, run_main


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A corpus to serve; uvicorn.run records its call instead of serving."""
    monkeypatch.setitem(EMBEDDERS, MODEL_NAME, FakeEmbedder)
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Night cramps. Calf cramps at night are common.\n")
    calls: dict[str, Any] = {"corpus": corpus, "index": tmp_path / "index", "runs": 0}

    def run(app: Any, **kwargs: Any) -> None:
        calls["runs"] += 1

    monkeypatch.setattr(uvicorn, "run", run)
    return calls


def damaged_scorer(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "scorer"
    shutil.copytree(SCORER_DIR, folder)
    data = bytearray((folder / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / name).write_bytes(bytes(data))
    monkeypatch.setattr(scorer_module, "SCORER_DIR", folder)


@pytest.mark.parametrize("name", [MODEL_FILE, TOKENIZER_FILE])
def test_serve_with_a_damaged_scorer_refuses_to_start(
        served: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        name: str) -> None:
    damaged_scorer(tmp_path, name, monkeypatch)
    code, _, err = run_main("serve", "--corpus", served["corpus"], "--index",
                              served["index"], "--port", str(free_port()))
    assert code == 6, err
    assert served["runs"] == 0
    assert "serving on" not in err and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("crampqa: error: The answer scorer") and "SHA-256" in last


def test_serve_with_a_sound_scorer_starts(served: dict[str, Any]) -> None:
    code, _, err = run_main("serve", "--corpus", served["corpus"], "--index",
                            served["index"], "--port", str(free_port()))
    assert code == 0, err
    assert served["runs"] == 1 and "serving on" in err
