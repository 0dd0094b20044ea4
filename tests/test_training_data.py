"""The scorer's training data keeps clear of everything crampqa is measured on."""

from __future__ import annotations

import json

from crampqa.config import PROJECT_ROOT
from crampqa.corpus import read_corpus
from crampqa.evaluation.datasets import load_questions

WRITTEN = PROJECT_ROOT / "training" / "data" / "written_questions.jsonl"


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def test_written_questions_are_over_medquad_passages_only() -> None:
    rows = [json.loads(line) for line in WRITTEN.read_text("utf-8").splitlines() if line]
    assert len(rows) == 960
    articles = {d.doc_id for d in read_corpus(PROJECT_ROOT / "corpus").documents}
    for row in rows:
        assert row["doc_id"] not in articles
        assert row["label"] in (0, 1) and 0 <= row["start"] < row["end"]
        assert "text" not in row and "passage" not in row  # MedQuAD text is not committed


def test_no_evaluation_question_is_a_training_question() -> None:
    written = {_normal(json.loads(line)["question"])
               for line in WRITTEN.read_text("utf-8").splitlines() if line}
    for path in sorted((PROJECT_ROOT / "eval").glob("*.jsonl")):
        if "judgments" in path.name:
            continue
        for q in load_questions(path):
            assert _normal(q.question) not in written, (path.name, q.id)
