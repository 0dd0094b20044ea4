"""The answer display at 80 columns: strength in words, lists, tables, plain output."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace

import pytest
from rich.console import Console

from crampqa import CrampQA
from crampqa.presentation import (
    STRENGTHS,
    STRONG_CONFIDENCE,
    order_note,
    plain_answer,
    render_answer,
    shorten,
    strength,
)
from crampqa.results import (
    NOT_ENGLISH_NOTE,
    Answer,
    Highlight,
    RankedPassage,
    looks_not_english,
)
from tests.conftest import run_main


def terminal(answer: Answer, scores: bool = False, width: int = 80) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=True, color_system=None)
    render_answer(answer, console, scores=scores)
    return buffer.getvalue()


def piped(answer: Answer) -> str:
    buffer = io.StringIO()
    render_answer(answer, Console(file=buffer, width=80))
    return buffer.getvalue()


def _passage(rank: int, score: float, **kw: object) -> RankedPassage:
    base = RankedPassage(rank=rank, doc_id="d", source_id=f"d#{rank}-{rank + 4}", title="T",
                         start=rank, end=rank + 4, score=score, text="text")
    return replace(base, **kw)  # type: ignore[arg-type]


def test_strength_words_follow_confidence_and_abstention() -> None:
    passages = [_passage(1, 0.92), _passage(2, 0.88), _passage(3, 0.74), _passage(4, 0.5)]
    sure = Answer("q", False, passages, confidence=STRONG_CONFIDENCE + 0.05)
    assert [strength(p, sure) for p in passages] == ["strong", "strong", "partial", "weak"]
    unsure = Answer("q", False, passages, confidence=STRONG_CONFIDENCE - 0.05)
    assert strength(passages[0], unsure) == "partial"
    weak = [replace(p, weak=True) for p in passages]
    abstained = Answer("q", True, weak, confidence=0.2, message="m")
    assert {strength(p, abstained) for p in weak} == {"weak"}
    assert set(STRENGTHS) == {"strong", "partial", "weak"}


def test_out_of_order_passage_says_why() -> None:
    passages = [_passage(1, 0.924), _passage(2, 0.660), _passage(3, 0.706)]
    answer = Answer("q", False, passages, confidence=STRONG_CONFIDENCE + 0.05)
    assert strength(passages[1], answer) == "weak" and strength(passages[2], answer) == "partial"
    assert order_note(passages[1], answer) is None
    assert order_note(passages[2], answer) == "shown after #2, which comes from another article"
    shown = terminal(answer, scores=True)
    assert "shown after #2" in shown
    assert "score 0.706" in shown and "score 0.660" in shown


def panel_bodies(shown: str) -> list[list[str]]:
    """The lines inside each panel's box, without the borders and the padding."""
    bodies: list[list[str]] = []
    for line in shown.splitlines():
        if line.startswith("╭"):
            bodies.append([])
        elif line.startswith("│") and bodies:
            bodies[-1].append(line[2:-2].rstrip())
    return bodies


def shown_passage(body: list[str], p: RankedPassage) -> list[str]:
    """The lines of ``body`` from the one where the passage starts (after its heading and
    context, however many lines those take)."""
    first = p.text.lstrip()[:20]
    start = next((i for i, line in enumerate(body) if line.lstrip().startswith(first)), None)
    assert start is not None, (first, body)
    return body[start:]


def test_real_answer_at_80_columns(real_qa: CrampQA) -> None:
    answer = real_qa.ask("which blood test shows my real magnesium level", k=3)
    shown = terminal(answer)
    lines = shown.splitlines()
    assert all(len(line) <= 80 for line in lines)
    # the panel shows the corpus slice: its words in order and every line of it on a line
    # of its own (wrapped at 80 columns, never joined or re-spaced)
    bodies = panel_bodies(shown)
    assert len(bodies) == len(answer.passages)
    for body, p in zip(bodies, answer.passages, strict=True):
        assert p.text == real_qa.document_text(p.doc_id)[p.start:p.end]
        if p.cells:
            continue
        rest = shown_passage(body, p)
        assert " ".join(rest).split()[:len(p.text.split())] == p.text.split()
        starts = [line.strip()[:20] for line in p.text.splitlines() if line.strip()]
        assert all(any(b.strip().startswith(s) for b in rest) for s in starts)
    # wide enough not to wrap, every line of the passage is shown exactly as it is
    wide = max(len(line) for p in answer.passages for line in p.text.splitlines()) + 10
    for body, p in zip(panel_bodies(terminal(answer, width=wide)), answer.passages,
                       strict=True):
        if not p.cells:
            expected = [line.rstrip() for line in p.text.splitlines()]
            assert shown_passage(body, p)[:len(expected)] == expected
    assert "score" not in shown  # raw scores only with --scores or --json
    assert re.search(r"(strong|partial|weak) match", shown)
    assert "000_153f9343c5352d90#" in shown
    assert "not medical advice" in shown
    # the first panel title is cut at a word, with an ellipsis
    title = lines[0]
    assert title.startswith("╭─ 1. Muscle cramps and vitamin deficiency")
    assert "…" in title and not re.search(r"\w─", title)


def test_the_panel_keeps_the_passage_spacing() -> None:
    """Double spaces, indentation and blank lines of a passage reach the panel as they
    are, inside and outside its bold sentence."""
    text = "Stretch  the calf  twice.\n\n  - Hold it for  30 seconds.\n- Then rest."
    bold = Highlight(100, 100 + len("Stretch  the calf  twice."))
    p = _passage(1, 0.9, start=100, end=100 + len(text), text=text, highlights=(bold,),
                 source_id=f"d#100-{100 + len(text)}")
    body = panel_bodies(terminal(Answer("q", False, [p], confidence=0.8)))[0]
    assert body[:len(text.splitlines())] == text.splitlines()


def test_every_chunk_of_a_list_shows_its_introduction(real_qa: CrampQA) -> None:
    answer = real_qa.ask("should I stretch my calves before bed", k=5)
    lists = [p for p in answer.passages if p.kind == "list" and p.context]
    assert lists, [p.source_id for p in answer.passages]
    shown = terminal(answer)
    for p in lists:
        assert p.context in shown.replace("│", " ")  # short enough to stay on one line
        doc = real_qa.document_text(p.doc_id)
        assert p.context == doc[p.context_start:p.context_end]


def test_table_row_is_column_value_lines(real_qa: CrampQA) -> None:
    answer = real_qa.ask("is magnesium bisglycinate well absorbed", k=3)
    row = next(p for p in answer.passages
               if p.kind == "table_row" and p.cells and p.cells[0]["column"] == "Magnesium Form")
    doc = real_qa.document_text(row.doc_id)
    cells = row.cells
    assert cells and cells[0]["value"].startswith("Magnesium ")
    for cell in cells:  # every piece is a verbatim slice with its own offsets
        assert cell["value"] == doc[cell["start"]:cell["end"]]
        assert cell["column"] == doc[cell["column_start"]:cell["column_end"]]
    shown = terminal(answer)
    assert "| Magnesium" not in shown
    assert "Magnesium Form: Magnesium" in shown
    plain = piped(answer)
    assert f"{cells[1]['column']}: {cells[1]['value']}" in plain.splitlines()
    data = json.loads(json.dumps(answer.to_dict()))
    assert data["passages"][answer.passages.index(row)]["cells"] == cells


def test_piped_output_is_plain_text(real_qa: CrampQA) -> None:
    answer = real_qa.ask("why do my calves cramp at night", k=3)
    plain = piped(answer)
    assert not re.search(r"[╭╮╰╯│─]|\x1b\[", plain)
    for p in answer.passages:
        assert f"source: {p.source_id}" in plain
        if not p.cells:
            assert p.text in plain  # verbatim, not re-wrapped
    assert plain.index("1. ") < plain.index("2. ") < plain.index("3. ")
    assert plain == plain_answer(answer)


def test_cli_piped_and_no_color(real_index, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import CORPUS

    monkeypatch.setenv("NO_COLOR", "1")
    code, out, _ = run_main("why do my calves cramp", "-k", "2", "--index", real_index,
                            "--corpus", CORPUS)
    assert code == 0
    assert "\x1b[" not in out and "╭" not in out
    assert "source: " in out and "match)" in out


def test_abstention_line_wraps_at_80_columns(real_qa: CrampQA) -> None:
    answer = real_qa.ask("how do I replace the chain on a mountain bike", k=2)
    assert answer.abstained
    shown = terminal(answer)
    assert all(len(line) <= 80 for line in shown.splitlines())
    assert "These sources do not cover this question." in shown.splitlines()[0]
    assert "weak match" in shown


@pytest.mark.parametrize("question", [
    "¿Por qué tengo calambres en las piernas por la noche?",
    "Pourquoi j'ai des crampes dans les jambes la nuit ?",
    "Warum habe ich nachts Krämpfe in den Beinen?",
    "为什么我晚上小腿抽筋",
    "Почему у меня судороги в ногах ночью?",
])
def test_non_english_question_says_the_sources_are_english(question: str,
                                                          real_qa: CrampQA) -> None:
    assert looks_not_english(question)
    answer = real_qa.ask(question)
    assert answer.note == NOT_ENGLISH_NOTE
    assert NOT_ENGLISH_NOTE in plain_answer(answer)


@pytest.mark.parametrize("question", [
    "why do my calves cramp at night", "can magnesium glycinate help", "B12 and the legs",
    "is café au lait bad for cramps", "🦵💥",
])
def test_english_questions_get_no_language_note(question: str) -> None:
    assert not looks_not_english(question)


def test_shorten_cuts_at_a_word() -> None:
    assert shorten("short", 10) == "short"
    cut = shorten("Muscle cramps and vitamin deficiency: magnesium, vitamin D", 30)
    assert len(cut) <= 30 and cut.endswith("…") and not cut[:-1].endswith(" ")
    assert cut == "Muscle cramps and vitamin…"
