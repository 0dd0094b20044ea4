"""Showing answers: rich terminal layout and JSON. Text is never changed, only styled;
on the terminal its control characters are shown as visible stand-ins
(:func:`crampqa.terminal.visible`), in JSON they are left as they are."""

from __future__ import annotations

import itertools
import json
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text

from crampqa.results import Answer, RankedPassage
from crampqa.terminal import visible


def answer_json(answer: Answer) -> str:
    """The one JSON object `crampqa ask --json` prints."""
    return json.dumps(answer.to_dict(), ensure_ascii=False, indent=2)


def passage_text(passage: RankedPassage) -> Text:
    """The passage with its highlighted sentences in bold, control characters visible.

    Each piece between highlight boundaries is made visible on its own, so the styling
    follows the passage's own offsets whatever the stand-ins' lengths.
    """
    size = len(passage.text)
    marks = sorted({0, size, *(min(max(x - passage.start, 0), size)
                               for h in passage.highlights for x in (h.start, h.end))})
    bold = [(max(h.start - passage.start, 0), min(h.end - passage.start, size))
            for h in passage.highlights]
    text = Text()
    for start, end in itertools.pairwise(marks):
        if end > start:
            lit = any(s <= start and end <= e for s, e in bold)
            text.append(visible(passage.text[start:end]), style="bold yellow" if lit else "")
    return text


def render_answer(answer: Answer, console: Console) -> None:
    """Print an answer for a person at a terminal."""
    if answer.abstained:
        console.print(Text(f"{answer.message} ", style="bold red"), end="")
        console.print("The closest passages, shown below as weak matches, may not answer it.")
        console.print()
    for passage in answer.passages:
        parts: list[Any] = []
        if passage.heading:
            parts.append(Text.assemble(("section › ", "dim"),
                                       (visible(passage.heading), "italic cyan")))
        if passage.context:
            parts.append(Text.assemble(("table header › ", "dim"),
                                       (visible(passage.context), "dim")))
        parts.append(passage_text(passage))
        label = "weak match" if passage.weak else f"score {passage.score:.3f}"
        # Text, not markup: a title or file name like "[red]…" is shown as it is
        title = Text.assemble((f"{passage.rank}.", "bold"), " ",
                              visible(passage.title, newlines=False))
        subtitle = Text(f"{visible(passage.source_id, newlines=False)} · {label}", style="dim")
        console.print(
            Panel(Group(*parts), title=title, title_align="left", subtitle=subtitle,
                  subtitle_align="right", border_style="red" if passage.weak else "blue")
        )
    console.print(Text(answer.disclaimer, style="italic dim"))
