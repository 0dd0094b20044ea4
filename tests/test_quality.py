"""Retrieval quality with the real model on the real corpus: the tuned defaults, the
synonym-expanded question, table rows, confidence and abstention."""

from __future__ import annotations

import pytest

from crampqa import CrampQA
from crampqa.config import PROJECT_ROOT, RetrievalSettings
from crampqa.evaluation.datasets import load_questions
from crampqa.evaluation.runner import EvalResult, evaluate_questions
from crampqa.lexical import expand_query
from crampqa.retrieval import with_overrides

QUESTIONS = PROJECT_ROOT / "eval" / "questions.jsonl"


@pytest.fixture(scope="module")
def default_result(real_qa: CrampQA) -> EvalResult:
    return evaluate_questions(real_qa, load_questions(QUESTIONS), ["fast", "default"], k=10,
                              source=str(QUESTIONS))


#: The tuned values (docs/evaluation.md): changing one is a decision to re-measure, never
#: a side effect.
TUNED = {
    "abstain_threshold": 0.46, "scorer_weight": 0.2, "scorer_threshold": 0.10,
    "scorer_candidates": 6, "document_vector_weight": 0.0, "document_title_weight": 0.5,
    "document_lexical_weight": 0.1, "document_passages_weight": 1.0,
    "document_temperature": 0.05, "document_scorer_weight": 0.5,
}


def test_index_carries_the_tuned_settings(real_qa: CrampQA) -> None:
    settings = real_qa.retrieval_settings
    assert settings == RetrievalSettings()
    assert real_qa.data.manifest.settings.retrieval == settings
    assert {name: getattr(settings, name) for name in TUNED} == TUNED
    weights = real_qa.document_weights()
    assert (weights.vector, weights.title, weights.lexical, weights.passages,
            weights.temperature, weights.scorer) == (0.0, 0.5, 0.1, 1.0, 0.05, 0.5)


def test_fusion_meets_the_quality_targets(default_result: EvalResult) -> None:
    """The targets of the retrieval-quality issue for the fused ranking (the fast mode,
    and the answer scorer's candidates) on our question set (in-sample: tuned on it
    together with MedQuAD, docs/evaluation.md)."""
    result = default_result.config("fast")
    # 0.908 with chunker version 1; lists on their own with their introduction as
    # context lose one question here (0.895) and gain one held out (docs/evaluation.md)
    assert result.metrics["hit@1"] >= 0.89
    assert result.metrics["hit@3"] >= 0.98
    assert result.mean_first_chars is not None and result.mean_first_chars <= 600
    assert result.abstention is not None
    assert result.abstention["correct_abstention_rate"] >= 0.90
    assert result.abstention["false_abstention_rate"] <= 0.03


def test_default_settings_on_the_tuning_set(default_result: EvalResult) -> None:
    """With the answer scorer: 0.882 / 0.974, 15 of 17 abstained, 3 of 76 wrongly
    (docs/evaluation.md); one question of margin each."""
    result = default_result.config("default")
    assert result.metrics["hit@1"] >= 0.87
    assert result.metrics["hit@3"] >= 0.96
    assert result.abstention is not None
    assert result.abstention["correct_abstention_rate"] >= 14 / 17
    assert result.abstention["false_abstention_rate"] <= 4 / 76


def test_lay_synonyms_reach_the_dense_side(real_qa: CrampQA) -> None:
    question = "which magnesium gives you the runs"
    assert expand_query(question) != question
    plain, expanded = real_qa.retriever.embed_questions(question)
    assert float(plain @ expanded) < 0.99  # a different, expanded question was embedded
    answer = real_qa.ask(question, k=3)
    assert not answer.abstained
    assert any("laxative" in p.text or "diarrhea" in p.text for p in answer.passages)


def test_question_without_synonyms_is_embedded_once(real_qa: CrampQA) -> None:
    question = "what does vitamin d do for muscles"
    assert expand_query(question) == question
    plain, expanded = real_qa.retriever.embed_questions(question)
    assert plain is expanded


def test_table_rows_are_scored_with_their_header_and_heading(real_qa: CrampQA) -> None:
    ranking = real_qa.retriever.rank("is it possible to get too much magnesium from food", 84,
                                     real_qa.retrieval_settings, diversify=False)
    rows = [c for c in ranking.candidates
            if real_qa.data.passages.kind(c.row) == "table_row"]
    assert rows
    for cand in rows:
        assert cand.sentence >= cand.dense
        assert cand.top2 >= cand.dense
        assert cand.sentence_expanded >= cand.dense_expanded


def test_confidence_is_the_best_match_among_the_top_passages(real_qa: CrampQA) -> None:
    """The fusion confidence (the fast mode's, and one part of the scorer's)."""
    settings = with_overrides(real_qa.retrieval_settings, scorer=False)
    question = "can you overdose on magnesium pills"
    ranking = real_qa.retriever.rank(question, 10, settings, diversify=False)
    best = max(max(c.dense, c.sentence, c.dense_expanded, c.sentence_expanded)
               for c in ranking.candidates[: settings.confidence_depth])
    unknown = real_qa.retriever.lexical.unknown_share(question)
    assert ranking.confidence == pytest.approx(best - settings.oov_penalty * unknown)
    assert not ranking.abstained


@pytest.mark.parametrize("question", [
    "is raw milk safe to drink",
    "best exercises for the long head of the tricep",
    "how do i replace the brake pads on a 2015 honda civic",
])
def test_link_bait_and_off_topic_questions_abstain(real_qa: CrampQA, question: str) -> None:
    answer = real_qa.ask(question, k=3)
    assert answer.abstained
    assert answer.passages and all(p.weak for p in answer.passages)


def test_threshold_option_moves_abstention(real_qa: CrampQA) -> None:
    question = "why do my calves cramp at night"
    answer = real_qa.ask(question)
    assert not answer.abstained
    assert real_qa.ask(question, abstain_threshold=min(1.0, answer.confidence + 0.01)).abstained


@pytest.mark.parametrize(("questions", "judgments", "at_least"), [
    ("questions.jsonl", "judgments.jsonl", 400),
    ("heldout.jsonl", "heldout_judgments.jsonl", 200),
])
def test_pooled_judgments_agree_with_the_evidence(
    questions: str, judgments: str, at_least: int
) -> None:
    """The blind pooled judgments of the top passages and the evidence snippets say the
    same: a passage judged to answer contains a snippet of its question."""
    import json

    from crampqa.corpus import read_corpus
    from crampqa.evaluation.datasets import normalize_for_match

    texts = {d.doc_id: d.text for d in read_corpus(PROJECT_ROOT / "corpus").documents}
    evidence = {q.id: [normalize_for_match(e) for e in q.evidence]
                for q in load_questions(PROJECT_ROOT / "eval" / questions)}
    lines = (PROJECT_ROOT / "eval" / judgments).read_text("utf-8").splitlines()
    judged = [json.loads(line) for line in lines if line.strip()]
    assert len(judged) > at_least
    for j in judged:
        doc_id, span = j["source_id"].rsplit("#", 1)
        start, end = (int(x) for x in span.split("-"))
        passage = normalize_for_match(texts[doc_id][start:end])
        assert j["label"] in ("answers", "partial", "no")
        if j["label"] == "answers":
            assert any(e in passage for e in evidence[j["qid"]]), j


def test_close_scores_prefer_another_article(real_qa: CrampQA) -> None:
    """Diversity: within the margin, the next passage comes from an article not shown yet
    (shown on the fused scores, where this question has close ones)."""
    settings = with_overrides(real_qa.retrieval_settings, scorer=False)
    question = "who is most likely to be low in b12"
    plain = real_qa.retriever.rank(question, 3, settings, diversify=False).candidates
    diverse = real_qa.retriever.rank(question, 3, settings).candidates
    doc = real_qa.data.passages.docs
    assert len({int(doc[c.row]) for c in diverse}) > len({int(doc[c.row]) for c in plain})
    assert diverse[0].row == plain[0].row  # the best passage always stays first
    # close means within the margin of the best score not shown yet
    ranked = real_qa.retriever.rank(question, 50, settings, diversify=False).candidates
    shown = {diverse[0].row}
    for cand in diverse[1:]:
        best_left = max(c.score for c in ranked if c.row not in shown)
        assert best_left - cand.score <= settings.diversity_margin + 1e-9
        shown.add(cand.row)


@pytest.mark.parametrize("questions", ["questions.jsonl", "heldout.jsonl", "dev.jsonl"])
def test_every_evidence_snippet_is_in_a_named_article(questions: str) -> None:
    from crampqa.corpus import read_corpus
    from crampqa.evaluation.datasets import normalize_for_match

    texts = {d.doc_id: normalize_for_match(d.text)
             for d in read_corpus(PROJECT_ROOT / "corpus").documents}
    loaded = load_questions(PROJECT_ROOT / "eval" / questions)
    assert {q.id for q in loaded if q.answerable} and {q.id for q in loaded if not q.answerable}
    for q in loaded:
        assert bool(q.evidence) == q.answerable, q.id
        for snippet in q.evidence:
            assert any(normalize_for_match(snippet) in texts[d] for d in q.doc_ids), (q.id, snippet)
