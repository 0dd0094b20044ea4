"""The command line: routing, output formats, and one-line errors with exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crampqa.cli import _route, app, main
from crampqa.corpus import read_corpus
from tests.conftest import CORPUS

runner = CliRunner()


def test_bare_question_routes_to_ask() -> None:
    assert _route(["why do my calves cramp"]) == ["ask", "why do my calves cramp"]
    assert _route(["-k", "5", "cramps?"]) == ["ask", "-k", "5", "cramps?"]
    assert _route(["index", "--rebuild"]) == ["index", "--rebuild"]
    assert _route(["--help"]) == ["--help"]
    assert _route(["help"]) == ["--help"]


def test_ask_json_matches_the_documented_shape(real_index: Path) -> None:
    result = runner.invoke(app, ["ask", "why do my calves cramp at night", "--json",
                                 "--index", str(real_index), "--corpus", str(CORPUS), "-k", "4"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"question", "abstained", "passages"} <= set(data)
    assert len(data["passages"]) == 4
    texts = {d.doc_id: d.text for d in read_corpus(CORPUS).documents}
    for p in data["passages"]:
        assert {"rank", "doc_id", "source_id", "title", "start", "end", "score", "text",
                "highlights"} <= set(p)
        assert p["text"] == texts[p["doc_id"]][p["start"] : p["end"]]


def test_terminal_output_shows_sources_and_the_disclaimer(real_index: Path) -> None:
    result = runner.invoke(app, ["ask", "what does magnesium do for leg cramps",
                                 "--index", str(real_index), "--corpus", str(CORPUS)])
    assert result.exit_code == 0, result.output
    assert "not medical advice" in result.stdout
    assert "002_2f11bc5b4f226583#" in result.stdout or "000_153f9343c5352d90#" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["   "], 2, "The question is empty"),
        (["ask", "cramps", "-k", "0"], 2, "k must be"),
        (["ask", "cramps", "--corpus", "/nonexistent/corpus", "--index", "/tmp/x-none"], 3,
         "Corpus folder not found"),
        (["index", "--ann", "ivfpq"], 2, "Unknown --ann"),
        (["ask", "cramps", "--corpus", "README.md", "--index", "/tmp/x-none"], 3,
         "Corpus path is not a folder"),
    ],
)
def test_user_mistakes_give_one_line_and_exit_code(args, code, message, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == code
    captured = capsys.readouterr()
    assert message in captured.err
    assert "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_json_errors_are_json(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["ask", "", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["error"] == "bad_input"


def test_unreadable_index_is_a_clear_error(tmp_path: Path, capsys) -> None:
    root = tmp_path / "idx"
    root.mkdir()
    (root / "CURRENT").write_text("v-missing\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["ask", "cramps", "--index", str(root)])
    assert exit_info.value.code == 4
    assert "crampqa index --rebuild" in capsys.readouterr().err


def test_console_script_runs_a_real_question(real_index: Path) -> None:
    exe = Path(sys.executable).with_name("crampqa")
    result = subprocess.run([str(exe), "why do my calves cramp at night", "--json",
                             "--index", str(real_index), "--corpus", str(CORPUS)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["passages"]


@pytest.mark.parametrize("where", ["command", "import"])
def test_ctrl_c_exits_130_and_says_so(
    where: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import crampqa.cli as cli

    def interrupted(*args: object, **kwargs: object) -> None:
        if where == "import":  # a C extension interrupted while it loads
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt:
                raise ImportError("initialization failed") from None
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_open", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        main(["ask", "cramps"])
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.strip() == "crampqa: interrupted"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--version"])  # returns: exit status 0
    assert capsys.readouterr().out.startswith("crampqa ")
