"""End to end with the real model on the real corpus: what a user gets back."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from crampqa import CrampQA
from crampqa.config import PROJECT_ROOT
from crampqa.corpus import read_corpus
from crampqa.errors import InputError
from crampqa.evaluation.datasets import load_questions
from crampqa.retrieval import with_overrides
from tests.conftest import CORPUS

TEXTS = {d.doc_id: d.text for d in read_corpus(CORPUS).documents}


def _assert_verbatim(answer) -> None:
    for p in answer.passages:
        assert p.text == TEXTS[p.doc_id][p.start : p.end]
        assert p.source_id == f"{p.doc_id}#{p.start}-{p.end}"
        for h in p.highlights:
            assert p.start <= h.start < h.end <= p.end
        if p.heading is not None:
            assert p.heading == TEXTS[p.doc_id][p.heading_start : p.heading_end]
        if p.context is not None:
            assert p.context == TEXTS[p.doc_id][p.context_start : p.context_end]


def test_rbc_magnesium_passage_comes_first(real_qa: CrampQA) -> None:
    answer = real_qa.ask("which blood test shows my real magnesium level")
    assert not answer.abstained
    assert "Red Blood Cell (RBC) Magnesium" in answer.passages[0].text
    _assert_verbatim(answer)


def test_night_calf_cramps_returns_only_corpus_slices(real_qa: CrampQA) -> None:
    answer = real_qa.ask("why do my calves cramp at night", k=5)
    assert not answer.abstained
    assert len(answer.passages) == 5
    assert [p.rank for p in answer.passages] == [1, 2, 3, 4, 5]
    assert all(p.highlights for p in answer.passages)
    _assert_verbatim(answer)


def test_every_passage_of_many_answers_is_verbatim(real_qa: CrampQA) -> None:
    for q in load_questions(PROJECT_ROOT / "eval/questions.jsonl"):
        _assert_verbatim(real_qa.ask(q.question, k=5))


def test_table_row_answer_comes_with_its_header(real_qa: CrampQA) -> None:
    answer = real_qa.ask("which magnesium form is gentle on the stomach for leg cramps", k=5)
    rows = [p for p in answer.passages if p.kind == "table_row"]
    assert rows, "a table row should be among the answers"
    assert rows[0].context is not None and rows[0].context.startswith("| Magnesium Form |")


def test_off_topic_question_abstains_but_lists_weak_matches(real_qa: CrampQA) -> None:
    answer = real_qa.ask("how do I change the oil in my car")
    assert answer.abstained
    assert answer.message
    assert answer.passages and all(p.weak for p in answer.passages)


def test_bad_input_is_refused(real_qa: CrampQA) -> None:
    with pytest.raises(InputError, match="empty"):
        real_qa.ask("   \n\t ")
    with pytest.raises(InputError, match="limit"):
        real_qa.ask("cramp " * 1000)
    with pytest.raises(InputError, match="k must be"):
        real_qa.ask("cramps", k=0)


def test_build_and_ask_work_with_the_network_blocked(tmp_path: Path) -> None:
    """A fresh build and a question in a subprocess where every socket connect fails."""
    script = textwrap.dedent(f"""
        import socket
        def refuse(*args, **kwargs):
            raise OSError("network blocked by test")
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        import os
        for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
            os.environ.pop(key, None)  # crampqa must set these itself
        from crampqa import CrampQA
        qa = CrampQA.open({str(CORPUS)!r}, {str(tmp_path / 'index')!r})
        answer = qa.ask("why do my calves cramp at night")
        text = open(os.path.join({str(CORPUS)!r}, answer.passages[0].doc_id + ".txt"),
                    encoding="utf-8").read()
        assert answer.passages[0].text == text[answer.passages[0].start:answer.passages[0].end]
        print("OK", os.environ["HF_HUB_OFFLINE"], os.environ["TRANSFORMERS_OFFLINE"])
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "OK 1 1" in result.stdout


def test_asks_from_several_threads_equal_asks_one_at_a_time(
    real_qa: CrampQA, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The web service answers on one engine thread per CPU: an ask must only read.
    questions = [q.question for q in
                 load_questions(PROJECT_ROOT / "eval" / "questions.jsonl")][:48]
    alone = {q: real_qa.ask(q).to_dict() for q in questions}
    # let the threads race to build it (the session's engine gets its table back after)
    monkeypatch.setattr(real_qa.retriever.lexical, "_initials", None)
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda q: real_qa.ask(q).to_dict(), questions[::-1] * 2))
    assert together == [alone[q] for q in questions[::-1] * 2]


def test_sentence_features_equal_a_per_passage_computation(
    real_qa: CrampQA, monkeypatch: pytest.MonkeyPatch
) -> None:
    retriever = real_qa.retriever
    data = real_qa.data
    passage_of = np.asarray(retriever._sentence_passage).copy()
    for victim in (5, 40):  # two passages without sentences (theirs go to the one before)
        assert (passage_of == victim).any()
        passage_of[passage_of == victim] = victim - 1
    monkeypatch.setattr(retriever, "_sentence_passage", passage_of)
    every = len(data.passages)
    settings = with_overrides(real_qa.retrieval_settings, dense_candidates=every,
                              lexical_candidates=every)
    for question in ("why do my calves cramp at night", "foods high in potassium"):
        query, expanded = retriever.embed_questions(question)
        ranking = retriever.rank(question, every, settings, diversify=False)
        assert len(ranking.candidates) == every
        for cand in ranking.candidates:
            lo, hi = (int(i) for i in np.searchsorted(passage_of, [cand.row, cand.row + 1]))
            if hi == lo:
                want = (cand.dense, cand.dense, cand.dense_expanded)
            else:
                block = np.asarray(data.sentence_embeddings[lo:hi], dtype=np.float32)
                sims = block @ query
                want = (float(sims.max()), float(np.sort(sims)[-2:].mean()),
                        float((block @ expanded).max()))
            if data.passages.kind(cand.row) == "table_row":
                want = (max(want[0], cand.dense), max(want[1], cand.dense),
                        max(want[2], cand.dense_expanded))
            assert cand.sentence_rows == list(range(lo, hi))
            got = (cand.sentence, cand.top2, cand.sentence_expanded)
            assert got == pytest.approx(want, abs=1e-5), cand.row


def test_the_lexical_lookup_table_is_published_only_when_whole(
    real_qa: CrampQA, monkeypatch: pytest.MonkeyPatch
) -> None:
    lexical = real_qa.retriever.lexical
    vocab = lexical._retriever.vocab_dict  # type: ignore[attr-defined]
    seen_partial = []

    class Watched(dict):  # iterating it checks that nothing half-built is visible
        def __iter__(self) -> Iterator[str]:
            for term in super().__iter__():
                seen_partial.append(lexical._initials is not None)
                yield term

    # both are put back after the test: the engine is the whole session's
    monkeypatch.setattr(lexical, "_initials", None)
    monkeypatch.setattr(lexical._retriever, "vocab_dict", Watched(vocab))
    table = lexical._by_initial()
    published = lexical._initials
    monkeypatch.undo()  # the session's engine gets back the table its asks use
    assert seen_partial and not any(seen_partial)
    assert published is table and sum(map(len, table.values())) == len(
        [t for t in vocab if t])


def test_each_thread_has_its_own_stemmer() -> None:
    from crampqa.lexical import _stemmer

    mine = _stemmer()
    with ThreadPoolExecutor(1) as pool:
        theirs = pool.submit(_stemmer).result()
    assert mine is not None and theirs is not None
    assert mine is _stemmer() and theirs is not mine
