"""Terminal escape injection (issue #15): escape sequences in file names, sources.json
titles and document text never reach a terminal raw; ``--json`` keeps the verbatim text.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crampqa.presentation import passage_text
from crampqa.results import Highlight, RankedPassage
from crampqa.terminal import json_for_terminal, visible
from tests.conftest import run_main

CLEAR = "\x1b[2J\x1b[H"
TITLE = "\x1b]0;owned\x07"
C1_CSI = "\x9b31m"
RAW = ("\x1b", "\x07", "\x9b", "\x9d", "\x7f", "\x00")
DOC = ("Night cramps. Calf cramps at night are common" + CLEAR + " in older adults"
       + C1_CSI + ". Stretching the calf" + TITLE + " before bed can help.\n")


pytestmark = pytest.mark.usefixtures("fake_default_model")


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, Path]:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "evil.txt").write_text(DOC)
    (corpus / f"evil{TITLE}.txt").write_text(DOC)  # skipped: no usable source ID
    (corpus / "plain.txt").write_text("Magnesium. Magnesium may help with cramps.\n")
    (corpus / f"photo{CLEAR}.png").write_bytes(b"\x89PNG")
    (corpus / "sources.json").write_text(json.dumps({
        "plain": {"title": "[red]Fake red[/red] \x1b[31mRED\x1b[0m\x9b1m", "url": "x"}}))
    return corpus, tmp_path / "index"


def assert_safe(text: str) -> None:
    for char in RAW:
        assert char not in text, (char, text)


def test_visible_replaces_every_control_character() -> None:
    assert visible("a\x1b[2Jb\x07c\x7fd\x9be\x00") == "a␛[2Jb␇c␡d\\x9be␀"
    assert visible("line 1\r\nline 2\tend") == "line 1\nline 2\tend"
    assert visible("one\ntwo\rthree", newlines=False) == "one␊two␍three"
    text = "".join(map(chr, range(0x100)))
    assert_safe(visible(text))
    assert_safe(json_for_terminal(json.dumps(text, ensure_ascii=False)))
    assert json.loads(json_for_terminal(json.dumps(text, ensure_ascii=False))) == text


def test_index_and_sources_show_names_and_titles_visibly(hostile: tuple[Path, Path]) -> None:
    corpus, index = hostile
    code, out, err = run_main("index", "--corpus", corpus, "--index", index)
    assert code == 0, err
    assert_safe(out + err)
    assert "skipped photo␛[2J␛[H.png: unsupported file type '.png'" in err.splitlines()
    assert ("skipped evil␛]0;owned␇.txt: file name has a line break or another control "
            "character; rename it") in err.splitlines()
    code, out, err = run_main("sources", "--corpus", corpus, "--index", index)
    assert code == 0, err
    assert_safe(out + err)
    assert "evil  Night cramps." in out
    assert "plain  [red]Fake red[/red] ␛[31mRED␛[0m\\x9b1m" in out


def test_ask_shows_text_titles_and_ids_visibly(hostile: tuple[Path, Path]) -> None:
    corpus, index = hostile
    code, out, err = run_main("ask", "calf cramps at night stretching", "-k", "2",
                              "--corpus", corpus, "--index", index)
    assert code == 0, err
    assert_safe(out + err)
    assert "␛[2J␛[H" in out and "\\x9b31m" in out  # the document text, made visible
    assert "[red]Fake red[/red]" in out  # a title is never read as markup


def test_json_output_keeps_the_verbatim_text(hostile: tuple[Path, Path]) -> None:
    corpus, index = hostile
    code, out, err = run_main("ask", "calf cramps at night stretching", "--json",
                              "--corpus", corpus, "--index", index)
    assert code == 0, err
    passages = json.loads(out)["passages"]
    evil = next(p for p in passages if p["doc_id"] == "evil")
    assert evil["text"] == DOC[evil["start"] : evil["end"]]
    assert "\x1b[2J" in evil["text"]


def test_info_and_errors_are_safe(hostile: tuple[Path, Path]) -> None:
    corpus, index = hostile
    assert run_main("index", "--corpus", corpus, "--index", index)[0] == 0
    code, out, err = run_main("info", "--json", "--corpus", corpus, "--index", index)
    assert code == 0, err
    assert_safe(out + err)
    assert [f"evil{TITLE}.txt", "file name has a line break or another control character; "
            "rename it"] in json.loads(out)["corpus"]["skipped"]
    code, out, err = run_main("info", "--corpus", corpus, "--index", index)
    assert code == 0, err
    assert_safe(out + err)
    assert out.startswith("documents ")
    missing = corpus.parent / f"gone{CLEAR}"
    code, out, err = run_main("ask", "cramps", "--corpus", missing, "--index", index)
    assert code == 3
    assert_safe(out + err)
    assert err.strip() == f"crampqa: error: Corpus folder not found: {visible(str(missing))} " \
                          "(use --corpus DIR)."


def test_highlights_keep_their_place_around_stand_ins() -> None:
    text = "A\x1b[2J cramp. Calf\x07 cramps hurt."
    second = text.index("Calf")
    passage = RankedPassage(rank=1, doc_id="d", source_id="d#0-1", title="t", start=10,
                            end=10 + len(text), score=1.0, text=text, kind="text",
                            highlights=(Highlight(10 + second, 10 + len(text)),))
    shown = passage_text(passage)
    assert shown.plain == visible(text)
    bold = [shown.plain[span.start : span.end] for span in shown.spans
            if "bold" in str(span.style)]
    assert bold == ["Calf␇ cramps hurt."]


def test_panels_and_show_at_a_terminal_are_safe() -> None:
    """At a terminal answers are panels, not plain text: the same stand-ins there, and in
    the article view of `crampqa show`."""
    import io

    from rich.console import Console

    from crampqa.articles import PassageView
    from crampqa.presentation import render_answer, render_view
    from crampqa.results import Answer

    text = "Calf cramps" + CLEAR + " at night." + C1_CSI + " Stretch."
    passage = RankedPassage(rank=1, doc_id=f"evil{TITLE}", source_id=f"evil{TITLE}#0-5",
                            title="[red]Fake[/red] \x1b[31m", start=0, end=len(text),
                            score=0.9, text=text, kind="text",
                            highlights=(Highlight(0, 10),), heading="Night\x7f", url="x\x1b")
    answer = Answer(question="q", abstained=False, passages=[passage], confidence=0.7)
    view = PassageView(source_id=f"evil{TITLE}#0-5", doc_id=f"evil{TITLE}", title="T\x1b[2J",
                       url="", document=text, start=0, end=5, around_start=0,
                       around_end=len(text), heading=None)
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, color_system=None, width=100)
    render_answer(answer, console)
    render_view(view, console)
    shown = buffer.getvalue()
    assert_safe(shown)
    assert "␛[2J␛[H" in shown and "[red]Fake[/red]" in shown and "Night␡" in shown


RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: what follows it is shown reversed
BIDI = ("\u061c", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", RLO,
        "\u2066", "\u2067", "\u2068", "\u2069")


def test_visible_neutralises_bidi_controls() -> None:
    for char in BIDI:
        assert visible(f"a{char}b") == f"a\\u{ord(char):04x}b"
    text = "".join(BIDI)
    assert json.loads(json_for_terminal(json.dumps(text, ensure_ascii=False))) == text
    assert not set(json_for_terminal(json.dumps(text, ensure_ascii=False))) & set(BIDI)
    assert visible("שלום and مرحبا stay") == "שלום and مرحبا stay"  # RTL letters are text


def test_bidi_controls_in_names_titles_and_text_never_reach_the_terminal(
        tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / f"calf{RLO}txt.exe.txt").write_text(
        f"Night cramps. Calf cramps at night {RLO}are common{RLO} in older adults.\n")
    (corpus / "sources.json").write_text(json.dumps(
        {f"calf{RLO}txt.exe": {"title": f"Cramps {RLO}gnp.evil"}}))
    index = tmp_path / "index"
    outputs = [run_main("index", "--corpus", corpus, "--index", index)]
    outputs.append(run_main("sources", "--corpus", corpus, "--index", index))
    outputs.append(run_main("ask", "calf cramps at night", "--corpus", corpus, "--index",
                            index))
    outputs.append(run_main("info", "--json", "--corpus", corpus, "--index", index))
    outputs.append(run_main("ask", "cramps", "--corpus", corpus / f"gone{RLO}", "--index",
                            index))
    for code, out, err in outputs:
        assert not set(out + err) & set(BIDI), (code, out, err)
    assert "calf\\u202etxt.exe" in outputs[1][1] and "Cramps \\u202egnp.evil" in outputs[1][1]
    assert "\\u202eare common\\u202e" in outputs[2][1]
    assert outputs[4][0] == 3 and "gone\\u202e" in outputs[4][2]
    code, out, _ = run_main("ask", "calf cramps at night", "--json", "--corpus", corpus,
                            "--index", index)
    assert code == 0 and RLO in json.loads(out)["passages"][0]["text"]  # JSON: verbatim
