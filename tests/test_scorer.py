"""The packaged answer scorer: integrity checks on load, and no torch on its path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from crampqa import scorer as scorer_module
from crampqa.corpus import sha256_file
from crampqa.errors import ModelError
from crampqa.scorer import (
    CARD_FILE,
    MODEL_FILE,
    SCORER_DIR,
    TOKENIZER_FILE,
    PassageScorer,
)
from tests.conftest import run_main


@pytest.fixture
def scorer_copy(tmp_path: Path) -> Path:
    target = tmp_path / "scorer"
    shutil.copytree(SCORER_DIR, target)
    return target


def test_packaged_scorer_matches_its_recorded_hash() -> None:
    card = json.loads((SCORER_DIR / CARD_FILE).read_text(encoding="utf-8"))
    scorer = PassageScorer.load()
    assert scorer.sha256 == card["sha256"] == sha256_file(SCORER_DIR / MODEL_FILE)
    assert scorer.name.startswith("crampqa-scorer@")
    # the model is committed: keep it small
    assert (SCORER_DIR / MODEL_FILE).stat().st_size <= 30 * 2**20


def test_a_same_size_corruption_is_refused(scorer_copy: Path) -> None:
    model = scorer_copy / MODEL_FILE
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match its SHA-256"):
        PassageScorer.load(scorer_copy)


def test_a_same_size_change_of_the_tokenizer_is_refused(scorer_copy: Path) -> None:
    """A valid tokenizer.json of the same size that reads words differently would change
    every probability silently: its SHA-256 in scorer.json is checked too."""
    tokenizer = scorer_copy / TOKENIZER_FILE
    data = tokenizer.read_bytes()
    assert data.count(b'"night"') == 1
    tokenizer.write_bytes(data.replace(b'"night"', b'"nigXt"'))
    question, passage = "leg cramps at night", "Calf cramps at night are common."
    changed = PassageScorer.load(scorer_copy, check_hash=False)
    assert changed.logits(question, [passage]) != PassageScorer.load().logits(question, [passage])
    with pytest.raises(ModelError, match=f"{TOKENIZER_FILE} does not match its SHA-256"):
        PassageScorer.load(scorer_copy)


def test_the_answer_pipeline_refuses_a_corrupted_scorer(
    scorer_copy: Path, corpus: Path, index: Path, monkeypatch: pytest.MonkeyPatch,
    fake_default_model: None,
) -> None:
    """The load `crampqa ask` itself makes checks the hash: a same-size flip of the
    packaged model is refused with one line and the model's exit code."""
    model = scorer_copy / MODEL_FILE
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    monkeypatch.setattr(scorer_module, "SCORER_DIR", scorer_copy)
    code, out, err = run_main("ask", "--corpus", corpus, "--index", index,
                              "why do my calves cramp at night")
    assert code == ModelError.exit_code, err
    assert out == ""
    assert "does not match its SHA-256" in err and len(err.strip().splitlines()) == 1
    # the fast mode never loads the scorer, so it still answers
    code, out, err = run_main("ask", "--fast", "--corpus", corpus, "--index", index,
                              "why do my calves cramp at night")
    assert code == 0, err


@pytest.mark.parametrize("name", [MODEL_FILE, TOKENIZER_FILE, CARD_FILE])
def test_a_missing_file_is_a_clear_error(scorer_copy: Path, name: str) -> None:
    (scorer_copy / name).unlink()
    with pytest.raises(ModelError, match=f"missing {name}"):
        PassageScorer.load(scorer_copy)


def test_a_damaged_card_is_a_clear_error(scorer_copy: Path) -> None:
    (scorer_copy / CARD_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match="damaged"):
        PassageScorer.load(scorer_copy)


def test_probabilities_are_per_passage_and_order_independent() -> None:
    scorer = PassageScorer.load()
    question = "what are the symptoms of low magnesium"
    passages = [
        "Symptoms of magnesium deficiency include muscle cramps, twitches, fatigue and "
        "an irregular heartbeat.",
        "The Eiffel Tower is a wrought-iron tower in Paris, completed in 1889.",
        "Magnesium",
    ]
    probs = scorer.probabilities(question, passages)
    assert probs.shape == (3,) and np.all((probs >= 0) & (probs <= 1))
    reverse = scorer.probabilities(question, passages[::-1])[::-1]
    # padding to the longest passage in the batch must not change a passage's score
    # a passage's score must not depend on the passages scored with it
    np.testing.assert_array_equal(probs, reverse)
    alone = np.array([scorer.probabilities(question, [p])[0] for p in passages])
    np.testing.assert_array_equal(probs, alone)
    assert scorer.probabilities(question, []).shape == (0,)


def test_the_scorer_reads_question_and_passage_together() -> None:
    """Real weights: the passage that answers outranks the off-topic one by far."""
    scorer = PassageScorer.load()
    probs = scorer.probabilities(
        "what are the symptoms of low magnesium",
        ["Symptoms of magnesium deficiency include muscle cramps, twitches, fatigue and "
         "an irregular heartbeat.",
         "The Eiffel Tower is a wrought-iron tower in Paris, completed in 1889."],
    )
    # the scorer is weak on text unlike its training data (docs/evaluation.md), but it
    # keeps an answer far above an off-topic passage
    assert probs[0] > 5 * probs[1]


def test_loading_and_scoring_import_no_torch() -> None:
    script = textwrap.dedent("""
        import json, sys
        from crampqa.scorer import PassageScorer
        s = PassageScorer.load()
        s.probabilities("leg cramps at night", ["Cramps often strike at night."])
        heavy = ("torch", "transformers", "sentence_transformers")
        print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
