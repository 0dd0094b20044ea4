"""Showing answers: rich terminal layout, plain text for pipes, and JSON.

Text is never changed, only styled or laid out: every piece printed from a source (passage,
section heading, list introduction, table header cell, table value cell) is a verbatim slice
of its document. For a person (panels or plain text) its control characters are shown as
visible stand-ins (:func:`crampqa.terminal.visible`); in JSON they are left as they are.
"""

from __future__ import annotations

import itertools
import json
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text

from crampqa.results import Answer, RankedPassage
from crampqa.terminal import visible

if TYPE_CHECKING:
    from crampqa.articles import PassageView

#: Match strength in words, weakest first.
STRENGTHS = ("weak", "partial", "strong")
#: The answer's confidence (the figure that decides abstention) from which its first
#: passage counts as a strong match: a threshold at which at least 90 % of strong-labelled
#: first passages answer on the development sets eval/dev.jsonl + eval/dev2.jsonl
#: (`benchmarks/calibrate_strength.py`, six-layer scorer; 19/20 in-sample there, and
#: partial 108/160). The lowest threshold that reached 90 % there, 1.219 (28/31), sat on
#: the edge, so the next step up was taken.
STRONG_CONFIDENCE = 1.245
#: How far (in raw score) below the best passage another one may be and keep its strength,
#: or lose one step of it; further below, it is a weak match.
SAME_STRENGTH_GAP = 0.10
ONE_STEP_GAP = 0.25


def _level(p: RankedPassage, answer: Answer) -> int:
    """0 (weak), 1 (partial) or 2 (strong) for one passage, judged on its own.

    Today: from the answer's confidence (the figure abstention uses) for the best passage,
    and each other passage's raw score relative to the best one. When every passage carries
    the answer scorer's calibrated probability, this becomes one line, e.g.
    ``return 2 if p.probability >= 0.7 else 1 if p.probability >= 0.4 else 0``.
    """
    if answer.abstained or p.weak or not answer.passages:
        return 0
    base = 2 if answer.confidence >= STRONG_CONFIDENCE else 1
    gap = answer.passages[0].score - p.score
    return max(0, base - (0 if gap <= SAME_STRENGTH_GAP else 1 if gap <= ONE_STEP_GAP else 2))


def strength(p: RankedPassage, answer: Answer) -> str:
    """How well ``p`` matches the question, in words: "strong", "partial" or "weak".

    An abstained answer has only weak matches. The one place the mapping lives: the CLI,
    the JSON (``strength``) and the web page all show this.
    """
    return STRENGTHS[_level(p, answer)]


def order_note(p: RankedPassage, answer: Answer) -> str | None:
    """Why ``p`` is shown below a passage that matches less well, or None when it is not.

    The only reordering crampqa does: among close scores, the next passage comes from an
    article not shown yet, so a passage can follow a slightly lower-scored one.
    """
    index = next((i for i, q in enumerate(answer.passages) if q is p), None)
    if not index:
        return None
    above = answer.passages[:index]
    if (_level(p, answer) > min(_level(q, answer) for q in above)
            or p.score > min(q.score for q in above)):
        lower = next(q for q in above if q.score < p.score or _level(q, answer) <
                     _level(p, answer))
        return f"shown after #{lower.rank}, which comes from another article"
    return None


def answer_json(answer: Answer) -> str:
    """The one JSON object `crampqa ask --json` prints."""
    return json.dumps(answer.to_dict(), ensure_ascii=False, indent=2)


# ---------------------------------------------------------------------------- pieces


def shorten(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut at a word with an ellipsis."""
    if len(text) <= width:
        return text
    cut = text[: max(1, width - 1)]
    if " " in cut[width // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:-") + "…"


def _styled(text: str, offset: int, p: RankedPassage) -> Text:
    """``text`` (the document slice starting at ``offset``) with highlights in bold (none
    for a weak match) and control characters visible.

    Each piece between highlight boundaries is made visible on its own, so the styling
    follows the document's own offsets whatever the stand-ins' lengths.
    """
    size = len(text)
    lit_spans = () if p.weak or p.strength == "weak" else p.highlights  # a weak match: none
    marks = sorted({0, size, *(min(max(x - offset, 0), size)
                               for h in lit_spans for x in (h.start, h.end))})
    bold = [(max(h.start - offset, 0), min(h.end - offset, size)) for h in lit_spans]
    out = Text()
    for start, end in itertools.pairwise(marks):
        if end > start:
            lit = any(s <= start and end <= e for s, e in bold)
            out.append(visible(text[start:end]), style="bold yellow" if lit else "")
    return out


def passage_text(passage: RankedPassage) -> Text:
    """The passage with its highlighted sentences in bold, control characters visible."""
    return _styled(passage.text, passage.start, passage)


def _cell_lines(p: RankedPassage, plain: bool) -> list[Any]:
    """A table row as 'column: value' lines, each piece a verbatim slice."""
    lines: list[Any] = []
    for cell in p.cells:
        value_from = cell["start"] - p.start
        value = p.text[value_from : value_from + cell["end"] - cell["start"]]
        column = cell["column"]
        if plain:
            lines.append(visible(f"{column}: {value}" if column is not None else value))
        else:
            line = Text()
            if column is not None:
                line.append(visible(column), style="cyan")
                line.append(": ")
            line.append_text(_styled(value, cell["start"], p))
            lines.append(line)
    return lines


def _label(p: RankedPassage, answer: Answer, scores: bool) -> str:
    label = f"{strength(p, answer)} match"
    if scores:
        label += f" · score {p.score:.3f}"
    return label


# ---------------------------------------------------------------------------- layouts


def render_answer(answer: Answer, console: Console, scores: bool = False) -> None:
    """Print an answer: panels at a terminal, plain text when piped."""
    if not console.is_terminal:
        console.file.write(plain_answer(answer, scores))
        console.file.flush()
        return
    if answer.abstained:
        console.print(Text.assemble(
            (f"{answer.message} ", "bold red"),
            "The closest passages, shown below as weak matches, may not answer it."))
        console.print()
    if answer.note and answer.note != answer.message:
        console.print(Text(answer.note, style="bold"))
        console.print()
    width = console.width
    for passage in answer.passages:
        parts: list[Any] = []
        if passage.heading:
            parts.append(Text.assemble(("section › ", "dim"),
                                       (visible(passage.heading), "italic cyan")))
        if passage.context and passage.kind != "table_row":
            parts.append(Text(visible(passage.context), style="italic"))
        if passage.cells:
            parts.extend(_cell_lines(passage, plain=False))
        else:
            parts.append(passage_text(passage))
        if passage.url:
            parts.append(Text.assemble(("source › ", "dim"),
                                       (visible(passage.url, newlines=False), "underline")))
        note = order_note(passage, answer)
        if note:
            parts.append(Text(f"({note})", style="dim"))
        # Text, not markup: a title or file name like "[red]…" is shown as it is
        prefix = f"{passage.rank}. "
        title = Text.assemble((prefix, "bold"),
                              shorten(visible(passage.title, newlines=False),
                                      width - 8 - len(prefix)))
        source_id = visible(passage.source_id, newlines=False)
        subtitle = Text(shorten(f"{source_id} · {_label(passage, answer, scores)}",
                                width - 6), style="dim")
        console.print(
            Panel(Group(*parts), title=title, title_align="left", subtitle=subtitle,
                  subtitle_align="right", border_style="red" if passage.weak else "blue")
        )
    console.print(Text(answer.disclaimer))


def plain_answer(answer: Answer, scores: bool = False) -> str:
    """The answer as plain text (no colour, no boxes): one passage after another, each
    with its rank, strength, title and source ID; passage text verbatim, its control
    characters visible."""
    out: list[str] = []
    if answer.abstained:
        out += [f"{answer.message} The closest passages, shown below as weak matches, "
                "may not answer it.", ""]
    if answer.note and answer.note != answer.message:  # said once
        out += [answer.note, ""]
    for p in answer.passages:
        out.append(f"{p.rank}. {visible(p.title, newlines=False)} ({_label(p, answer, scores)})")
        out.append(visible(f"source: {p.source_id}" + (f" {p.url}" if p.url else ""),
                           newlines=False))
        note = order_note(p, answer)
        if note:
            out.append(f"({note})")
        if p.heading:
            out.append(f"section: {visible(p.heading)}")
        if p.context and p.kind != "table_row":
            out.append(visible(p.context))
        out.extend(_cell_lines(p, plain=True) if p.cells else [visible(p.text)])
        out.append("")
    out.append(answer.disclaimer)
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- show

#: Marks around the passage in plain `crampqa show` output (never part of a source's text).
MARK_START, MARK_END = "⟦", "⟧"


def render_view(view: PassageView, console: Console, full: bool = False) -> None:
    """Print a passage in its paragraph (or, with ``full``, its whole article), marked;
    control characters visible."""
    start, end = (0, len(view.document)) if full else (view.around_start, view.around_end)
    before = visible(view.document[start : view.start])
    after = visible(view.document[view.end : end])
    passage = visible(view.text)
    title = visible(view.title, newlines=False)
    source_id = visible(view.source_id, newlines=False)
    url = visible(view.url, newlines=False)
    heading = visible(view.heading) if view.heading else None
    whole = (view.start, view.end) == (0, len(view.document))  # nothing to mark
    mark = ("", "") if whole else (MARK_START, MARK_END)
    if not console.is_terminal:
        lines = [title, f"source: {source_id}" + (f" {url}" if url else "")]
        if heading and not full:
            lines.append(f"section: {heading}")
        lines += ["", f"{before}{mark[0]}{passage}{mark[1]}{after}"]
        console.file.write("\n".join(lines) + "\n")
        console.file.flush()
        return
    console.print(Text(title, style="bold"))
    if url:
        console.print(Text(url, style="underline"))
    if heading and not full:
        console.print(Text.assemble(("section › ", "dim"), (heading, "italic cyan")))
    console.print()
    console.print(Text.assemble(before, (passage, "" if whole else "reverse"), after))
    console.print()
    console.print(Text(source_id + ("" if whole else " (the passage in reverse video)"),
                       style="dim"))
