"""Abstention reasons: each says only what is true of the index."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from crampqa.abstention import abstain_reason, asks_for_amount
from crampqa.results import ABSTAIN_MESSAGE


def never_used(*words: str) -> Callable[[str], list[str]]:
    """An ``unknown_words`` that reports these words when the question has them."""
    return lambda question: [w for w in words if w in question.lower()]


def test_a_word_the_corpus_never_uses_is_named() -> None:
    reason = abstain_reason("does quinine help leg cramps", ["Stretch your calves."],
                            never_used("quinine"))
    assert reason.code == "unknown_terms" and reason.terms == ("quinine",)
    assert reason.message == f"{ABSTAIN_MESSAGE} They never mention “quinine”."


def test_several_unknown_words_are_listed_and_capped_at_three() -> None:
    reason = abstain_reason("gabapentin metformin ropinirole pramipexole", [],
                            never_used("gabapentin", "metformin", "ropinirole", "pramipexole"))
    assert reason.message.endswith("never mention “gabapentin”, “metformin” or “ropinirole”.")
    assert len(reason.terms) == 4


def test_an_amount_question_without_numbers_nearby_says_so() -> None:
    reason = abstain_reason("how many mg of magnesium glycinate before bed",
                            ["Glycinate is gentle on the stomach."], never_used("mg"))
    # a unit the corpus never spells out is not "a word it never mentions"
    assert reason.code == "no_amounts"
    assert reason.message == f"{ABSTAIN_MESSAGE} The closest passages give no amounts for this."


def test_an_amount_question_with_numbers_nearby_claims_nothing_more() -> None:
    reason = abstain_reason("how much magnesium per day",
                            ["Adults need 310 to 420 mg a day."], never_used())
    assert reason.code == "not_covered" and reason.message == ABSTAIN_MESSAGE


@pytest.mark.parametrize("question, wanted", [
    ("how many mg of magnesium should i take", True),
    ("what dose of vitamin d for cramps", True),
    ("normal range for b12 blood test", True),
    ("how long do night cramps last", True),
    ("why do my calves cramp at night", False),
    ("can low vitamin d cause muscle pain", False),
])
def test_amount_questions_are_recognised(question: str, wanted: bool) -> None:
    assert asks_for_amount(question) is wanted
