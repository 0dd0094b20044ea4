"""Showing answers: rich terminal layout and JSON. Text is never changed, only styled."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text

from crampqa.results import Answer, RankedPassage


def answer_json(answer: Answer) -> str:
    """The one JSON object `crampqa ask --json` prints."""
    return json.dumps(answer.to_dict(), ensure_ascii=False, indent=2)


def passage_text(passage: RankedPassage) -> Text:
    """The verbatim passage with its highlighted sentences in bold."""
    text = Text(passage.text)
    for h in passage.highlights:
        start = max(h.start - passage.start, 0)
        end = min(h.end - passage.start, len(passage.text))
        if end > start:
            text.stylize("bold yellow", start, end)
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
            parts.append(Text.assemble(("section › ", "dim"), (passage.heading, "italic cyan")))
        if passage.context:
            parts.append(Text.assemble(("table header › ", "dim"), (passage.context, "dim")))
        parts.append(passage_text(passage))
        label = "weak match" if passage.weak else f"score {passage.score:.3f}"
        title = f"[bold]{passage.rank}.[/bold] {passage.title}"
        subtitle = f"[dim]{passage.source_id} · {label}[/dim]"
        console.print(
            Panel(Group(*parts), title=title, title_align="left", subtitle=subtitle,
                  subtitle_align="right", border_style="red" if passage.weak else "blue")
        )
    console.print(Text(answer.disclaimer, style="italic dim"))
