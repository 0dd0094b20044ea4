"""Build progress when stderr is not a terminal: a plain line every few seconds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import crampqa.progress as progress_module
from crampqa import CrampQA
from crampqa.cli import ProgressLines, build_progress
from tests.conftest import run_main
from tests.support import write_beir


def test_lines_with_done_total_rate_and_eta(capsys: pytest.CaptureFixture[str]) -> None:
    now = [100.0]
    lines = ProgressLines(interval=5.0)
    lines.clock = lambda: now[0]
    lines("embedding passages", 0, 1000)  # starts the clock, prints nothing
    for done in range(50, 1001, 50):
        now[0] += 1.0
        lines("embedding passages", done, 1000)
    out = capsys.readouterr().err.strip().splitlines()
    assert len(out) == 4  # one line every 5 seconds of 20
    assert out[0] == "embedding passages: 250/1000 (25%), 50.0/s, ETA 0:15"
    assert out[-1].startswith("embedding passages: 1000/1000 (100%)")


def test_not_a_terminal_gets_lines(capsys: pytest.CaptureFixture[str]) -> None:
    with build_progress(True) as progress:  # pytest's stderr is not a terminal
        assert isinstance(progress, ProgressLines)
    with build_progress(False) as progress:
        assert progress is None


# ---- the commands that build, with standard error not a terminal ----------------------

def _beir(folder: Path, documents: int = 12) -> Path:
    """A small BEIR folder (corpus, queries, qrels) of ``documents`` documents."""
    docs = [{"_id": f"d{i}", "title": f"Topic {i}",
             "text": f"Document {i} is about magnesium and leg cramps number {i}. "
                     f"It has a second sentence on calcium {i}."} for i in range(documents)]
    write_beir(folder / "corpus.jsonl.gz", docs)
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": f"magnesium cramps {i}"}) + "\n"
                for i in range(3)), encoding="utf-8")
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(3)),
        encoding="utf-8")
    return folder


@pytest.fixture
def every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """A progress line on every call, and the notice before any build of 2+ documents."""
    monkeypatch.setattr(progress_module, "PROGRESS_INTERVAL_S", 0.0)
    monkeypatch.setattr(progress_module, "NOTICE_DOCUMENTS", 1)


def _progress_lines(err: str) -> list[str]:
    shape = re.compile(r": \d+/\d+ \(\d+%\), [\d.,]+/s, ETA")
    return [line for line in err.splitlines() if shape.search(line)]


@pytest.mark.usefixtures("fake_default_model", "every_call")
def test_eval_json_builds_with_progress_on_stderr(tmp_path: Path) -> None:
    folder = _beir(tmp_path / "beir")
    code, out, err = run_main("eval", folder, "--json", "--index", tmp_path / "idx")
    assert code == 0, err
    json.loads(out)  # stdout stays one JSON object
    stages = {line.split(":")[0] for line in _progress_lines(err)}
    assert {"passages", "sentences", "titles"} <= stages
    assert any(s.startswith("eval ") for s in stages)  # the evaluation itself too
    assert "Embedding 12 documents here" in err and "usually takes about" in err


@pytest.mark.usefixtures("fake_default_model", "every_call")
def test_ask_json_builds_with_progress_on_stderr(tmp_path: Path) -> None:
    folder = _beir(tmp_path / "beir")
    code, out, err = run_main("ask", "magnesium cramps", "--json", "--corpus", folder,
                              "--index", tmp_path / "idx")
    assert code == 0, err
    assert json.loads(out)["question"] == "magnesium cramps"
    assert any(line.startswith("passages: ") for line in _progress_lines(err))
    assert "Embedding 12 documents here" in err


@pytest.mark.usefixtures("fake_default_model", "every_call")
def test_python_api_build_reports_on_stderr_unless_told_not_to(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _beir(tmp_path / "beir")
    CrampQA.build(folder, tmp_path / "idx")
    err = capsys.readouterr().err
    assert any(line.startswith("sentences: ") for line in _progress_lines(err))
    assert "Embedding 12 documents here" in err
    CrampQA.build(folder, tmp_path / "idx", rebuild=True, progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.usefixtures("fake_default_model")
def test_no_notice_for_a_small_build(tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    CrampQA.build(_beir(tmp_path / "beir"), tmp_path / "idx")
    assert "Embedding" not in capsys.readouterr().err  # 12 documents, a few seconds


def test_duration_words() -> None:
    assert progress_module.duration(3) == "about 10 seconds"
    assert progress_module.duration(400) == "about 7 minutes"
    assert progress_module.duration(3 * 3600) == "about 3.0 hours"
