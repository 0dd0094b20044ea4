"""Questions up to the documented length limit (2,000 characters) are answered everywhere:
the answer scorer cuts a long question as well as the passage, so the pair always fits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from crampqa import CrampQA
from crampqa.config import MAX_QUESTION_CHARS
from crampqa.scorer import PassageScorer
from crampqa.web.app import create_app
from tests.conftest import run_main

#: the longest question crampqa accepts, made of words the scorer's vocabulary splits finely
LONGEST = ("cramps at night " * 200)[:MAX_QUESTION_CHARS].strip()
#: about 850 characters: long enough to crash a scorer that cut only the passage
LONG = ("cramps at night " * 60).strip()

pytestmark = pytest.mark.usefixtures("fake_default_model")


def test_the_scorer_reads_a_question_of_the_longest_allowed_length() -> None:
    scorer = PassageScorer.load()
    passages = ["Calf cramps at night are common.", "magnesium " * 400, ""]
    for question in (LONG, LONGEST):
        probs = scorer.probabilities(question, passages)
        assert probs.shape == (3,) and np.all(np.isfinite(probs))
        assert np.all((probs >= 0) & (probs <= 1))


def test_a_short_question_is_encoded_as_before() -> None:
    """Only the long question's encoding changes: a short one keeps every token and the
    passage is cut exactly as when only the passage was cut."""
    scorer = PassageScorer.load()
    old = PassageScorer.load()._tokenizer
    max_length = int(scorer.card["max_length"])
    old.enable_truncation(max_length=max_length, strategy="only_second")
    pair = ("why do my calves cramp at night", "magnesium helps the muscles relax " * 80)
    assert scorer._tokenizer.encode(*pair).ids == old.encode(*pair).ids


@pytest.mark.parametrize("question", [LONG, LONGEST])
def test_the_engine_answers_a_long_question(module_qa: CrampQA, question: str) -> None:
    for scorer in (True, False):
        answer = module_qa.ask(question, k=3, scorer=scorer)
        assert answer.passages and answer.question == question


def test_ask_answers_a_long_question(corpus: Path, index: Path) -> None:
    code, out, err = run_main("ask", LONGEST, "--corpus", corpus, "--index", index, "--json")
    assert code == 0, err
    assert json.loads(out)["question"] == LONGEST


def test_eval_runs_with_a_long_question(corpus: Path, index: Path, tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    rows = [{"id": "long", "question": LONGEST, "evidence": [], "answerable": False},
            {"id": "short", "question": "why do my calves cramp at night",
             "evidence": ["cramp"], "answerable": True}]
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    for config in ("fast", "default"):
        code, out, err = run_main("eval", questions, "--corpus", corpus, "--index", index,
                                  "--config", config, "--json")
        assert code == 0, err
        assert json.loads(out)


def test_the_api_answers_a_long_question(module_qa: CrampQA) -> None:
    with TestClient(create_app(module_qa, warm_up=False, follow_index=False),
                    base_url="http://127.0.0.1:8765") as client:
        response = client.get("/api/ask", params={"q": LONGEST})
        assert response.status_code == 200, response.text
        assert response.json()["question"] == LONGEST
        response = client.post("/api/ask", json={"q": LONGEST})
        assert response.status_code == 200, response.text
