"""Chunking edge cases (issue #15): every document with text yields a passage.

A line without sentence-ending punctuation reads as a heading, so notes and one-liners
used to give no passage while the build reported them as indexed. Documents made only
of such lines are now passages; one that still gives none (only link lines or table
rules) is skipped with its reason. The five articles of corpus/ are chunked exactly as
before (pinned below).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crampqa import CrampQA
from crampqa.chunking import chunk_text, no_passage_reason
from crampqa.config import ChunkSettings
from crampqa.corpus import read_corpus
from tests.conftest import CORPUS, run_main

#: SHA-256 of the chunker's output on the five articles of corpus/ (offsets, kinds,
#: headings, table headers and list introductions, sentences). Documents of heading-like
#: lines becoming passages must leave these articles as they were: this is the digest of
#: the list chunking (lists packed on their own) alone, and chunker version 3, which
#: combines the two changes, gives the same; so does version 4 (overlong runs cut: no
#: sentence of these articles is overlong).
CORPUS_CHUNKS_SHA256 = "556dc4074d2079f93abbca50e88413736ca3efa4feb84306c868daf87c99a79b"


pytestmark = pytest.mark.usefixtures("fake_default_model")


def spans(text: str) -> list[str]:
    return [text[c.start : c.end] for c in chunk_text(text)]


@pytest.mark.parametrize("text, expected", [
    ("Magnesium dose 400 mg daily", ["Magnesium dose 400 mg daily"]),
    ("Magnesium dose 400 mg daily\n", ["Magnesium dose 400 mg daily"]),
    ("# Leg cramps", ["# Leg cramps"]),
    ("Leg Cramps At Night\n\nMagnesium 400 mg\nStretch calves", [
        "Leg Cramps At Night\n\nMagnesium 400 mg\nStretch calves"]),
    ("Why Do Legs Cramp?", ["Why Do Legs Cramp?"]),
    ("| Mineral | Dose |", ["| Mineral | Dose |"]),
    ("| Mineral | Dose |\n|---|---|", ["| Mineral | Dose |"]),
])
def test_documents_of_heading_like_lines_are_passages(text: str, expected: list[str]) -> None:
    assert spans(text) == expected
    assert no_passage_reason(text) is None
    for chunk in chunk_text(text):
        assert chunk.heading is None and chunk.sentences


@pytest.mark.parametrize("text", ["See also: leg cramps", "Related: calf pain\n\n|---|---|",
                                  "\n\n  \n"])
def test_documents_without_passage_text_say_why(text: str) -> None:
    assert chunk_text(text) == []
    assert no_passage_reason(text) is not None


def test_headings_followed_by_text_are_unchanged() -> None:
    text = "Night Cramps\nCalf cramps are common at night. They pass.\n"
    [chunk] = chunk_text(text)
    assert text[chunk.start : chunk.end] == "Calf cramps are common at night. They pass."
    assert chunk.heading == (0, len("Night Cramps"))


LINE_SOUP = st.lists(st.sampled_from(
    ["\n", "\n\n", " ", "Magnesium dose 400 mg", "Cramps hurt.", "# Title", "See also: x",
     "| a | b |", "|---|---|", "- item", "1. step", "Why Do Legs Cramp?", "Mr. ", "\u2028"]),
    max_size=20).map("".join)


@settings(max_examples=400, deadline=None)
@given(LINE_SOUP)
def test_no_passage_reason_agrees_with_the_chunker(text: str) -> None:
    chunks = chunk_text(text, ChunkSettings(max_chars=60))
    assert bool(chunks) == (no_passage_reason(text) is None)
    for chunk in chunks:
        piece = text[chunk.start : chunk.end]
        assert piece and piece == piece.strip()


def test_corpus_articles_are_chunked_as_before() -> None:
    report = read_corpus(CORPUS)
    assert len(report.documents) == 5 and not report.skipped
    dump = [[d.doc_id, d.sha256,
             [[c.start, c.end, c.kind, c.heading, c.context, c.sentences]
              for c in chunk_text(d.text, ChunkSettings())]] for d in report.documents]
    digest = hashlib.sha256(json.dumps(dump).encode()).hexdigest()
    assert digest == CORPUS_CHUNKS_SHA256


def test_one_line_notes_are_indexed_and_answered_verbatim(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    note = "Magnesium dose 400 mg daily"
    (corpus / "note.txt").write_text(note + "\n")
    (corpus / "title-only.md").write_text("# Potassium and cramps\n")
    (corpus / "links.md").write_text("See also: leg cramps\n")
    code, _, err = run_main("index", "--corpus", corpus, "--index", tmp_path / "index")
    assert code == 0, err
    assert err.splitlines()[0] == ("skipped links.md: no passage text (only 'See also: …'-style "
                                   "link lines or table rules)")
    assert "Indexed 2 documents into 2 passages" in err
    qa = CrampQA.open(corpus, tmp_path / "index", auto_build=False)
    [best] = qa.ask("magnesium dose", k=1).passages
    assert (best.doc_id, best.text) == ("note", note)
    assert qa.document_text("note")[best.start : best.end] == note


def test_corpus_that_yields_no_passages_is_a_clear_error(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "links.md").write_text("See also: leg cramps\n|---|---|\n")
    code, out, err = run_main("ask", "cramps", "--json", "--corpus", corpus, "--index",
                              tmp_path / "index")
    assert code == 3, err
    assert json.loads(out)["error"] == "corpus_error"
    assert err.strip().splitlines() == [
        f"crampqa: error: No readable documents in {corpus} (supported: .txt, .md, .html, "
        "BEIR corpus.jsonl); links.md (no passage text (only 'See also: …'-style link lines "
        "or table rules)); 1 file(s) skipped."]


@pytest.mark.parametrize("line", [
    "cramps at night " * 12_500,                    # 200 KB of words, no punctuation
    "magnesium\t" * 3000 + "x" * 5000 + " tail",    # tabs, then one word over the limit
    "Calf cramps. " + "word " * 2000 + "end. Short one.",  # an overlong run between sentences
], ids=["words", "long-word", "between-sentences"])
def test_an_overlong_run_is_cut_into_bounded_verbatim_passages(line: str) -> None:
    text = "Heading Of The Note\n" + line + "\n"
    max_chars = ChunkSettings().max_chars
    chunks = chunk_text(text)
    assert len(chunks) > 1
    for chunk in chunks:
        piece = text[chunk.start : chunk.end]
        assert 0 < len(piece) <= max_chars and piece == piece.strip()
        for start, end in chunk.sentences:
            assert chunk.start <= start < end <= chunk.end and end - start <= max_chars
    # nothing is lost: the passages cover the line, with only whitespace between them
    assert chunks[0].start == text.index("\n") + 1 and chunks[-1].end == len(text.rstrip())
    for before, after in itertools.pairwise(chunks):
        assert not text[before.end : after.start].strip()
    # cuts fall between words, except inside the one word longer than a passage
    for before, after in itertools.pairwise(chunks):
        if "x" * max_chars not in text[before.start : after.end]:
            assert text[before.end].isspace() or text[before.end - 1] in ".!?"

