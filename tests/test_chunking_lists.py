"""Lists: every chunk of a list carries the line that introduces it; no lone last item."""

from __future__ import annotations

from crampqa.chunking import INTRO_MAX_CHARS, KIND_LIST, chunk_text
from crampqa.config import ChunkSettings
from crampqa.corpus import read_corpus
from tests.conftest import CORPUS


def _doc(prefix: str) -> str:
    return next(d.text for d in read_corpus(CORPUS).documents if d.doc_id.startswith(prefix))


def _lists(text: str) -> list[tuple[str, str | None]]:
    return [(text[c.start:c.end], text[c.context[0]:c.context[1]] if c.context else None)
            for c in chunk_text(text) if c.kind == KIND_LIST]


def test_every_chunk_of_a_list_carries_its_introduction() -> None:
    text = _doc("000")
    steps = [(body, ctx) for body, ctx in _lists(text) if "Epsom" in body or "B12 supp" in body]
    assert len(steps) == 2  # the list is longer than one passage
    for body, ctx in steps:
        assert ctx == "Actionable Steps to Stop the Cramps:"
        assert body.startswith("- ")  # the introduction is context, not glued into the text
    assert not any("Actionable Steps" in c_text for c_text, _ in _lists(text))


def test_no_lone_trailing_item() -> None:
    text = _doc("003")
    (body, ctx), = [(b, c) for b, c in _lists(text) if "tasty source of this mineral" in b]
    assert body.count("\n- ") >= 1  # joined with its neighbours: the mineral is named
    assert "magnesium" in body
    assert ctx is not None and ctx.endswith("Some excellent sources include:")


def test_lone_last_item_joins_or_borrows_a_neighbour() -> None:
    items = [f"- Item {i}: " + "word " * 6 + "end." for i in range(7)]  # 45 characters each
    text = "Things to try:\n" + "\n".join(items) + "\nAfter the list a paragraph."
    for max_chars in range(200, 400, 10):  # short items (under max_chars // 4) are packed
        chunks = [c for c in chunk_text(text, ChunkSettings(max_chars=max_chars))
                  if c.kind == KIND_LIST]
        assert all(c.context and text[c.context[0]:c.context[1]] == "Things to try:"
                   for c in chunks)
        last = text[chunks[-1].start:chunks[-1].end]
        assert last.count("- Item") >= 2, (max_chars, last)
        assert all(c.end - c.start <= max_chars for c in chunks)
        covered = "\n".join(text[c.start:c.end] for c in chunks)
        assert covered == "\n".join(items)  # every item once, in order


def test_items_long_enough_to_stand_alone_do() -> None:
    text = _doc("000")
    bodies = [body for body, ctx in _lists(text) if ctx == "Actionable Steps to Stop the Cramps:"]
    assert len(bodies) == 4 and all(body.count("\n- ") == 0 for body in bodies)


def test_long_introduction_stays_in_its_paragraph() -> None:
    intro = "Magnesium matters a lot. " * 10 + "Some good sources include:"
    assert len(intro) > INTRO_MAX_CHARS
    text = intro + "\n- Spinach\n- Almonds\n"
    chunks = chunk_text(text)
    assert chunks[0].kind == "text" and text[chunks[0].start:chunks[0].end] == intro
    (lst,) = [c for c in chunks if c.kind == KIND_LIST]
    assert lst.context is not None
    assert text[lst.context[0]:lst.context[1]] == "Some good sources include:"
