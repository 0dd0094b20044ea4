"""The answer comes first, and an abstention's reason names only what the sources lack.

Run on the session's real index (real model, real scorer, the five articles)."""

from __future__ import annotations

import pytest

from crampqa import CrampQA
from crampqa.retrieval import is_lead_in

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("text", "lead_in"),
    [
        ("I woke up at night with cramps.\n\nSo, what can cause leg cramps?", True),
        ("Here is a comparison of some popular options:", True),
        ("Which one is right for you?\" ", True),
        ("Calcium helps muscles contract. Too little calcium causes cramps.", False),
        ("| Magnesium Glycinate | High bioavailability. |", False),
    ],
)
def test_a_lead_in_ends_in_a_question_or_a_colon(text: str, lead_in: bool) -> None:
    assert is_lead_in(text) is lead_in


@pytest.mark.parametrize(
    "question", ["why do my calves cramp at night", "which magnesium form is best"]
)
def test_an_introduction_or_lead_in_line_is_never_first(real_qa: CrampQA, question: str) -> None:
    answer = real_qa.ask(question, k=3)
    assert not answer.abstained
    first = answer.passages[0].text
    assert not is_lead_in(first), f"{question!r} starts with a lead-in: {first!r}"
    # a lead-in passage may still be shown, just not first
    assert all(p.text for p in answer.passages)


def test_the_readme_question_first_states_a_cause(real_qa: CrampQA) -> None:
    first = real_qa.ask("why do my calves cramp at night", k=3).passages[0].text.lower()
    assert "deficiency" in first or "cause" in first, first


def test_a_lay_synonym_is_not_named_as_missing(real_qa: CrampQA) -> None:
    """"charley horse" is in the synonym table (→ cramp), which the sources use."""
    answer = real_qa.ask("what helps a charley horse")
    assert "charley" not in (answer.message or "")
    assert "horse" not in (answer.message or "")
    assert real_qa.retriever.lexical.unknown_words("what helps a charley horse") == []


def test_filler_words_are_never_named_as_missing(real_qa: CrampQA) -> None:
    question = "should I worry about cramps during pregnancy"
    unknown = real_qa.retriever.lexical.unknown_words(question)
    assert "worry" not in unknown
    answer = real_qa.ask(question)
    assert "worry" not in (answer.message or "")
    if answer.abstained and answer.reason == "unknown_terms":
        # every word it names is a subject word the five articles never use
        assert answer.message is not None and "pregnancy" in answer.message


def test_strength_words_are_calibrated_on_the_development_sets(real_qa: CrampQA) -> None:
    """"strong" means: on the development sets, at least 90 % of first passages called
    strong answer the question (in-sample: STRONG_CONFIDENCE was chosen there), and a
    "partial" first passage answers less often than a strong one."""
    from crampqa.config import PROJECT_ROOT
    from crampqa.evaluation.datasets import contains_evidence, load_questions
    from crampqa.presentation import strength

    counts = {"strong": [0, 0], "partial": [0, 0]}
    for name in ("dev.jsonl", "dev2.jsonl"):
        for q in load_questions(PROJECT_ROOT / "eval" / name):
            answer = real_qa.ask(q.question, k=1)
            if answer.abstained:
                continue
            first = answer.passages[0]
            word = strength(first, answer)
            answers = q.answerable and contains_evidence(first.text, q.evidence)
            counts[word][0] += answers
            counts[word][1] += 1
    strong_hits, strong_n = counts["strong"]
    partial_hits, partial_n = counts["partial"]
    assert strong_n >= 10 and strong_hits / strong_n >= 0.9, counts
    assert partial_hits / partial_n < strong_hits / strong_n, counts
