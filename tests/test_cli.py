"""The command line: routing, output formats, and one-line errors with exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crampqa import CrampQA
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


def run_in_terminal(args: list[str], columns: int = 80, timeout: float = 180.0) -> str:
    """Run ``crampqa ARGS`` with a real pseudo-terminal (``columns`` wide) as its stdin,
    stdout and stderr; everything it wrote, escape sequences included."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import termios
    import time

    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items()
           if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "TTY_COMPATIBLE")}
    env["TERM"] = "xterm-256color"
    code = "import sys; from crampqa.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdin=secondary,
                            stdout=secondary, stderr=secondary, env=env, close_fds=True)
    os.close(secondary)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 1.0)
            if ready:
                try:
                    data = os.read(primary, 65536)
                except OSError:  # EIO: the terminal's last writer is gone
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        assert proc.wait(timeout=max(1.0, deadline - time.monotonic())) == 0, chunks
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(primary)
    return b"".join(chunks).decode("utf-8", errors="replace").replace("\r\n", "\n")


def test_terminal_output_shows_sources_and_the_disclaimer(real_index: Path,
                                                          real_qa: CrampQA) -> None:
    """At a real terminal: one box per passage within 80 columns, its source ID and
    strength on the bottom border, the best sentences in bold, then the disclaimer."""
    import re

    question = "what does magnesium do for leg cramps"
    shown = run_in_terminal(["ask", question, "--index", str(real_index),
                             "--corpus", str(CORPUS)])
    answer = real_qa.ask(question)
    bold = re.compile(r"\x1b\[(?:\d+;)*1(?:;\d+)*m")
    assert bold.search(shown), shown
    text = re.sub(r"\x1b\[[0-9;]*m", "", shown)  # what a person reads
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines)
    tops = [line for line in lines if line.startswith("╭─ ")]
    bottoms = [line for line in lines if line.startswith("╰")]
    assert len(tops) == len(bottoms) == len(answer.passages) == 3
    for i, (top, bottom, p) in enumerate(zip(tops, bottoms, answer.passages, strict=True)):
        assert top.startswith(f"╭─ {i + 1}. {p.title[:20]}") and top.endswith("╮")
        assert f"{p.source_id} · " in bottom and "match" in bottom and bottom.endswith("╯")
    assert "not medical advice" in lines[-2] + lines[-1]
    # the highlighted sentences of the passages that are not weak matches are the bold ones
    # (a table row is shown as "column: value" lines: its cells' values are the bold text)
    highlighted = [p.text[h.start - p.start:h.end - p.start]
                   for p in answer.passages if p.strength != "weak" and not p.cells
                   for h in p.highlights]
    highlighted += [cell["value"] for p in answer.passages
                    if p.strength != "weak" and p.cells and p.highlights for cell in p.cells]
    assert highlighted
    lit = " ".join(re.findall(r"\x1b\[(?:\d+;)*1(?:;\d+)*m([^\x1b]*)", shown))
    for sentence in highlighted:
        assert " ".join(sentence.split()[:3]) in " ".join(lit.split())


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


def test_console_script_runs_a_real_question(real_index: Path, real_qa: CrampQA) -> None:
    """The installed `crampqa` command answers with the engine's passages, each a
    verbatim slice of its article."""
    exe = Path(sys.executable).with_name("crampqa")
    question = "why do my calves cramp at night"
    result = subprocess.run([str(exe), question, "--json",
                             "--index", str(real_index), "--corpus", str(CORPUS)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    answer = real_qa.ask(question)
    assert data["question"] == question and data["abstained"] is False
    assert [p["source_id"] for p in data["passages"]] == \
        [p.source_id for p in answer.passages]
    assert len(data["passages"]) == 3
    texts = {d.doc_id: d.text for d in read_corpus(CORPUS).documents}
    for p in data["passages"]:
        assert p["text"] == texts[p["doc_id"]][p["start"]:p["end"]]
    assert "cramp" in data["passages"][0]["text"].lower()


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
