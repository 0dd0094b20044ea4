"""Property tests: any question, any line separators, any bytes never break crampqa."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crampqa import CrampQA
from crampqa.chunking import chunk_text
from crampqa.config import MAX_QUESTION_CHARS, ChunkSettings
from crampqa.corpus import decode_bytes, read_corpus
from crampqa.engine import clean_question
from crampqa.errors import InputError
from crampqa.results import ABSTAIN_MESSAGE, NOT_ENGLISH_NOTE
from tests.support import assert_verbatim, cli, texts_of

pytestmark = pytest.mark.usefixtures("fake_default_model")


# ---- fuzzing ------------------------------------------------------------------------

#: The fake_default_model fixture is function-scoped; it holds no per-example state.
FIXTURES = [HealthCheck.function_scoped_fixture]
ANY_TEXT = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=st.characters(exclude_categories=()), max_size=60),  # lone surrogates
    st.text(alphabet="\x00\x01\x1b\x7f\x85\t\n\r \u2028\u200b\ufeffé🦵aZ?.", max_size=40),
    st.integers(MAX_QUESTION_CHARS - 2, MAX_QUESTION_CHARS + 2).map(lambda n: "é" * n),
)


def _check_answer(qa: CrampQA, question: str) -> None:
    try:
        answer = qa.ask(question, k=4)
    except InputError as exc:
        assert exc.message.startswith(("The question is empty", "The question is ")), exc
        assert "limit" in exc.message or "empty" in exc.message
        return
    assert answer.question == clean_question(question)
    assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in answer.question)
    assert len(answer.question) <= MAX_QUESTION_CHARS
    assert 1 <= len(answer.passages) <= 4
    for p in answer.passages:
        assert p.text == qa.document_text(p.doc_id)[p.start : p.end]
        assert p.weak == answer.abstained
    assert (answer.message or "").startswith((ABSTAIN_MESSAGE, NOT_ENGLISH_NOTE)) == \
        answer.abstained
    assert (answer.reason is not None) == answer.abstained
    json.dumps(answer.to_dict(), ensure_ascii=False).encode("utf-8")


@settings(max_examples=200, deadline=None, suppress_health_check=FIXTURES)
@given(ANY_TEXT)
def test_fuzz_question_path_api(module_qa: CrampQA, question: str) -> None:
    _check_answer(module_qa, question)


@settings(max_examples=25, deadline=None, suppress_health_check=FIXTURES)
@given(ANY_TEXT)
def test_fuzz_question_path_cli(base: tuple[Path, Path], question: str) -> None:
    run = cli("ask", question, "--json", "-k", "2", "--index", base[1], "--corpus", base[0])
    assert run.code in (0, 2), run.err
    if run.code == 2:
        run.error(2, "bad_input")
    else:
        assert_verbatim(run.answer(), texts_of(base[0]))


LINE_SOUP = st.lists(st.sampled_from(
    [*"\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029 \t|-#:.?!aZ1é🦵", "- ", "| a | b |", "Mr. "]),
    max_size=150).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURES)
@given(LINE_SOUP)
def test_fuzz_chunker_with_every_line_separator(text: str) -> None:
    for chunk in chunk_text(text, ChunkSettings(max_chars=60)):
        piece = text[chunk.start : chunk.end]
        assert 0 <= chunk.start < chunk.end <= len(text) and piece == piece.strip()
        for s, e in chunk.sentences:
            assert chunk.start <= s < e <= chunk.end
        for span in (chunk.heading, chunk.context):
            assert span is None or 0 <= span[0] < span[1] <= len(text)


#: Control characters that make data look binary (tab, newlines and the like do not).
CONTROLS = "".join(map(chr, [*range(0x09), *range(0x0e, 0x20), *range(0x7f, 0xa0)]))
#: Text a document may hold: no such control characters.
DOC_TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",),
                                          exclude_characters=CONTROLS), max_size=100)


@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURES)
@given(st.binary(max_size=300))
def test_fuzz_decoding_arbitrary_bytes(data: bytes) -> None:
    try:
        text = decode_bytes(data)
    except UnicodeError:  # documented: the file is skipped as "not text"
        try:
            plain = data.decode("utf-8")
        except UnicodeDecodeError:
            return
        # UTF-8 is refused only for a NUL or many control characters
        assert "\x00" in plain or sum(c in CONTROLS for c in plain) > 8, data
        return
    assert isinstance(text, str) and "\x00" not in text


@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURES)
@given(DOC_TEXT, st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32"]))
def test_fuzz_decoding_text_gives_it_back(text: str, encoding: str) -> None:
    """Text without control characters, in UTF-8 (BOM or not) or UTF-16/32 with a BOM,
    decodes to exactly itself."""
    if encoding == "utf-8" and text.startswith("\ufeff"):
        text = "x" + text  # a leading U+FEFF is read as a BOM: that is UTF-8 with BOM
    assert decode_bytes(text.encode(encoding)) == text


def test_fuzz_corpus_of_arbitrary_bytes_never_fails(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    folder = tmp_path / "c"
    folder.mkdir()
    for i in range(40):
        size = int(rng.integers(0, 400))
        (folder / f"f{i}.txt").write_bytes(rng.integers(0, 256, size, dtype=np.uint8)
                                           .tobytes())
    report = read_corpus(folder)
    assert len(report.documents) + len(report.skipped) == 40
    for doc in report.documents:
        assert "\x00" not in doc.text
