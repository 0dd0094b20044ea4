"""Abstention claims, checked on the real model over the real corpus.

What crampqa abstains on is a property of the model and the answer scorer, so these run
on the session's real index (never the fake embedder). Re-run this file whenever the
ranking, the scorer or the abstention threshold changes:

    .venv/bin/python -m pytest -q tests/test_abstention_real_model.py
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crampqa import CrampQA
from crampqa.results import ABSTAIN_MESSAGE, NOT_ENGLISH_NOTE
from tests.conftest import CORPUS
from tests.support import assert_verbatim, cli, texts_of

pytestmark = pytest.mark.slow

NON_ENGLISH = [
    "¿Por qué tengo calambres en las piernas por la noche?",
    "为什么我晚上小腿抽筋",
    "Почему у меня судороги в ногах ночью?",
    "لماذا أعاني من تشنجات في الساق ليلا",
]


@pytest.fixture(autouse=True)
def _no_crampqa_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CRAMPQA_CORPUS", "CRAMPQA_INDEX", "CRAMPQA_DEBUG"):
        monkeypatch.delenv(name, raising=False)


def _assert_abstained(answer: dict[str, object], question: str,
                      message: str = ABSTAIN_MESSAGE) -> None:
    assert answer["question"] == question
    assert answer["abstained"] is True, f"answered {question!r} instead of abstaining"
    assert answer["message"] == message
    passages = answer["passages"]
    assert isinstance(passages, list) and passages and all(p["weak"] for p in passages)


@pytest.mark.parametrize("question", NON_ENGLISH, ids=["spanish", "chinese", "russian",
                                                       "arabic"])
def test_non_english_question_is_answered_by_abstaining(
        question: str, real_index: Path, real_qa: CrampQA) -> None:
    """The corpus is English: a question in another language gets no confident answer."""
    answer = cli("ask", question, "--json", "--index", real_index, "--corpus", CORPUS).answer()
    # only the note that the sources are in English, not "do not cover this question"
    _assert_abstained(answer, question, NOT_ENGLISH_NOTE)
    assert_verbatim(answer, texts_of(CORPUS))
    assert real_qa.ask(question).to_dict() == answer  # the API says the same


def test_emoji_only_question_abstains(real_index: Path, real_qa: CrampQA) -> None:
    question = "🦵💥😣"
    answer = cli("ask", question, "--json", "--index", real_index, "--corpus", CORPUS).answer()
    _assert_abstained(answer, question)
    assert real_qa.ask(question).to_dict() == answer
    run = cli("ask", question, "--index", real_index, "--corpus", CORPUS)  # terminal layout
    assert run.code == 0 and ABSTAIN_MESSAGE in run.out and "weak match" in run.out
