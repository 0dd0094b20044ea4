"""The build's embedding engine (ONNX Runtime instead of torch, distinct texts embedded
once) leaves every answer on the default corpus as it was.

``tests/golden/answers_default_corpus.json.gz`` holds, for every question of
``eval/questions.jsonl``, ``heldout``, ``dev`` and ``blind`` under the ``default``,
``fast`` and ``dense`` configurations, whether crampqa abstained and the source IDs of
its top 10 passages, in order, as answered from an index built with sentence-transformers
(torch) before the change (``benchmarks/answer_snapshot.py record``). It was recorded again
once retrieval itself changed on purpose (the answer comes first; lay synonyms are not
unknown words), after the ONNX build had been checked against the torch-built answers,
and again for the six-layer answer scorer (``default`` only: ``fast`` and ``dense`` answers
were identical).
The session's real index is built with today's build.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from crampqa import CrampQA
from crampqa.config import PROJECT_ROOT
from crampqa.evaluation.runner import CONFIGS

GOLDEN = Path(__file__).parent / "golden" / "answers_default_corpus.json.gz"


def _questions(name: str) -> dict[str, str]:
    path = PROJECT_ROOT / "eval" / f"{name}.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    return {row["id"]: row["question"] for row in rows if "question" in row}


@pytest.mark.parametrize("name", ["questions", "heldout", "dev", "blind"])
def test_every_answer_is_unchanged(real_qa: CrampQA, name: str) -> None:
    golden = json.loads(gzip.decompress(GOLDEN.read_bytes()))[name]
    questions = _questions(name)
    changed = []
    for config, answers in golden.items():
        for qid, (abstained, sources) in answers.items():
            answer = real_qa.ask(questions[qid], k=10, **CONFIGS[config])
            now = [answer.abstained, [p.source_id for p in answer.passages]]
            if now != [abstained, sources]:
                changed.append((config, qid))
    assert not changed, f"{len(changed)} answers changed: {changed[:10]}"
