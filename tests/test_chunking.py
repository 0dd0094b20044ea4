"""Chunking: exact offsets, sentence boundaries, tables, lists and link-bait."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from crampqa.chunking import KIND_LIST, KIND_TABLE_ROW, chunk_text, is_linkbait, split_sentences
from crampqa.config import ChunkSettings
from crampqa.corpus import read_corpus
from tests.conftest import CORPUS

WORDS = st.sampled_from(
    ["Magnesium", "calf", "cramps", "e.g.", "Dr.", "vs.", "B12", "“quoted”", "’s", "night", "…",
     "U.S.", "3.5", "(RBC)", "—", "émigré", "🦵", "a", "the", "pain"]
)
SENTENCE = st.builds(lambda ws, end: " ".join(ws) + end,
                     st.lists(WORDS, min_size=1, max_size=30), st.sampled_from([".", "?", "!", ""]))
LINE = st.one_of(
    st.lists(SENTENCE, min_size=1, max_size=8).map(" ".join),
    SENTENCE.map(lambda s: "- " + s),
    st.lists(SENTENCE, min_size=2, max_size=4).map(lambda c: "| " + " | ".join(c) + " |"),
    st.just("|---|---|"),
    st.just("💡 You might also like: Why the Long Head of the Tricep is the Secret"),
    st.just("The Heading Of A Section"),
    st.just(""),
    st.text(min_size=0, max_size=80),
)
DOCUMENT = st.lists(LINE, min_size=0, max_size=25).map("\n".join)


def _check_invariants(text: str, max_chars: int = 600) -> None:
    for chunk in chunk_text(text, ChunkSettings(max_chars=max_chars)):
        piece = text[chunk.start : chunk.end]
        assert 0 <= chunk.start < chunk.end <= len(text)
        assert piece == piece.strip(), "passages start and end on visible characters"
        assert not is_linkbait(piece.splitlines()[0])
        for s, e in chunk.sentences:
            assert chunk.start <= s < e <= chunk.end
        # never cut inside a word
        assert chunk.start == 0 or not (text[chunk.start - 1].isalnum() and piece[0].isalnum())
        assert chunk.end == len(text) or not (text[chunk.end].isalnum() and piece[-1].isalnum())
        if chunk.heading:
            assert chunk.heading[1] <= chunk.start
        if chunk.context and chunk.kind == KIND_TABLE_ROW:
            assert text[chunk.context[0]:chunk.context[1]].lstrip().startswith("|")
        elif chunk.context:  # a list's introduction, before the list
            assert chunk.kind == KIND_LIST and chunk.context[1] <= chunk.start
            assert text[chunk.context[0]:chunk.context[1]].rstrip().endswith(":")


@settings(max_examples=300, deadline=None)
@given(DOCUMENT)
def test_offsets_are_exact_slices_on_generated_text(text: str) -> None:
    _check_invariants(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_arbitrary_unicode_never_breaks_the_chunker(text: str) -> None:
    _check_invariants(text, max_chars=120)


def test_every_real_passage_is_a_verbatim_slice_and_sized() -> None:
    docs = read_corpus(CORPUS).documents
    assert len(docs) == 5
    for doc in docs:
        chunks = chunk_text(doc.text)
        assert chunks
        for chunk in chunks:
            piece = doc.text[chunk.start : chunk.end]
            assert piece and piece == piece.strip()
            # a passage longer than 600 characters is a single sentence or table row
            if len(piece) > 600:
                assert len(chunk.sentences) == 1
            assert "You might also like" not in piece
            assert "📖 Related" not in piece and "👉 See also" not in piece


def test_table_rows_are_whole_and_carry_their_header() -> None:
    doc = next(d for d in read_corpus(CORPUS).documents if d.doc_id.startswith("002"))
    rows = [c for c in chunk_text(doc.text) if c.kind == KIND_TABLE_ROW]
    assert len(rows) == 5
    for row in rows:
        line = doc.text[row.start : row.end]
        assert line.startswith("| Magnesium") and line.endswith("|") and "\n" not in line
        assert row.context is not None
        assert doc.text[row.context[0] : row.context[1]].startswith("| Magnesium Form |")


def test_sentences_split_at_boundaries_not_abbreviations() -> None:
    text = "Ask Dr. Smith about it. Diet vs. supplements matter (e.g. citrate). Done!"
    spans = [text[s:e] for s, e in split_sentences(text, 0, len(text))]
    assert spans == ["Ask Dr. Smith about it.", "Diet vs. supplements matter (e.g. citrate).",
                     "Done!"]


def test_long_single_sentence_stays_whole() -> None:
    sentence = "Magnesium " + "really " * 150 + "helps."
    text = sentence + " Short one."
    chunks = chunk_text(text, ChunkSettings(max_chars=600))
    assert 600 < len(sentence) <= 2 * 600  # longer than a passage, not overlong
    assert [text[c.start : c.end] for c in chunks if c.start < len(sentence)] == [sentence]


def test_linkbait_lines_are_detected() -> None:
    assert is_linkbait("💡 You might also like: Why the Long Head of the Tricep")
    assert is_linkbait("📖 Related: Why the Dead Bug Exercise")
    assert is_linkbait("👉 See also: Why Raw Milk Is Bad")
    assert not is_linkbait("Related research suggests magnesium helps: see below.")
