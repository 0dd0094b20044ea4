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


LAY = PROJECT_ROOT / "training" / "data" / "lay"


def test_lay_articles_are_not_about_cramps_or_the_articles_minerals() -> None:
    """The lay training articles are about other everyday-health topics, so every figure on
    the five articles stays a test of how the scorer carries over."""
    articles = sorted((LAY / "articles").glob("*.md"))
    corpus = [d.text.lower() for d in read_corpus(PROJECT_ROOT / "corpus").documents]
    for path in articles:
        text = path.read_text(encoding="utf-8").lower()
        for word in ("cramp", "magnesium", "charley horse"):
            assert word not in text, (path.name, word)
        # no sentence of the five articles is copied into a lay article
        for doc in corpus:
            for sentence in doc.split(". "):
                if len(sentence) > 60:
                    assert sentence not in text, (path.name, sentence[:60])


def test_no_evaluation_question_is_a_lay_training_question() -> None:
    lay = {_normal(json.loads(line)["question"])
           for path in sorted((LAY / "questions").glob("*.jsonl"))
           for line in path.read_text("utf-8").splitlines() if line.strip()}
    for path in sorted((PROJECT_ROOT / "eval").glob("*.jsonl")):
        if "judgments" in path.name:
            continue
        for q in load_questions(path):
            assert _normal(q.question) not in lay, (path.name, q.id)


def test_lay_data_passes_its_checker() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(PROJECT_ROOT / "training" / "check_lay_data.py")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-2000:]
