"""The question–passage scorer: a small cross-encoder trained by this project.

It reads a question and a passage together and gives the probability that the passage
answers the question. crampqa ships it inside the package (``crampqa/models/scorer``:
``model.onnx``, ``tokenizer.json`` and ``scorer.json`` with its SHA-256); it runs on
onnxruntime + tokenizers, so the query path never imports torch. How it was trained:
``training/`` and ``crampqa/models/scorer/README.md``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crampqa.corpus import sha256_file
from crampqa.errors import ModelError

SCORER_DIR = Path(__file__).resolve().parent / "models" / "scorer"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CARD_FILE = "scorer.json"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
_REINSTALL = "reinstall crampqa (or run `make train-scorer`)"


def packaged_scorer_record(folder: Path | None = None) -> dict[str, str]:
    """The packaged scorer's name and SHA-256 as its card states them (for manifests;
    the file itself is hashed and checked when the scorer is loaded)."""
    try:
        card = json.loads(((folder or SCORER_DIR) / CARD_FILE).read_text(encoding="utf-8"))
        return {"name": str(card.get("name", "crampqa-scorer")), "sha256": str(card["sha256"])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


class PassageScorer:
    """Probabilities that passages answer a question (onnxruntime, int8 weights)."""

    def __init__(self, folder: Path, card: dict[str, Any], session: Any, tokenizer: Any) -> None:
        self.folder = folder
        self.card = card
        self._session = session
        self._tokenizer = tokenizer

    @property
    def sha256(self) -> str:
        """SHA-256 of ``model.onnx``, as checked on load (recorded in index manifests)."""
        return str(self.card["sha256"])

    @property
    def name(self) -> str:
        """The scorer's name and the start of its hash, for manifests and ``info``."""
        return f"{self.card.get('name', 'crampqa-scorer')}@{self.sha256[:12]}"

    @classmethod
    def load(cls, folder: Path | None = None, *, check_hash: bool = True,
             threads: int = 1) -> PassageScorer:
        """Load the scorer in ``folder`` (the packaged one by default), checking that
        ``model.onnx`` and ``tokenizer.json`` have the SHA-256s written in
        ``scorer.json``."""
        folder = Path(folder) if folder is not None else SCORER_DIR
        paths = [folder / n for n in (MODEL_FILE, TOKENIZER_FILE, CARD_FILE)]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise ModelError(f"The answer scorer in {folder} is incomplete "
                             f"(missing {', '.join(missing)}); {_REINSTALL}.")
        try:
            card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
            max_length = int(card["max_length"])
            if check_hash:
                expected = {MODEL_FILE: str(card["sha256"]),
                            TOKENIZER_FILE: str(card["tokenizer_sha256"])}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"The answer scorer's {folder / CARD_FILE} is damaged; "
                             f"{_REINSTALL}.") from exc
        for name, digest in (expected.items() if check_hash else ()):
            if sha256_file(folder / name) != digest:
                raise ModelError(f"The answer scorer {folder / name} does not match its "
                                 f"SHA-256 in {CARD_FILE}; {_REINSTALL}.")
        card["sha256"] = card.get("sha256") or sha256_file(folder / MODEL_FILE)
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
            # longest first: a long question is cut too (only the passage was cut before,
            # and a question of more than max_length tokens could not fit at all); for a
            # question shorter than the cut passage, the usual case, nothing changes
            tokenizer.enable_truncation(max_length=max_length, strategy="longest_first")
            tokenizer.no_padding()
            options = ort.SessionOptions()
            options.intra_op_num_threads = max(1, threads)
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(str(folder / MODEL_FILE), options,
                                           providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types
            raise ModelError(f"The answer scorer in {folder} could not be loaded "
                             f"({type(exc).__name__}); {_REINSTALL}.") from exc
        return cls(folder, card, session, tokenizer)

    def logits(self, question: str, passages: Sequence[str]) -> np.ndarray:
        """Raw scores for (question, passage) pairs, one per passage."""
        encodings = self._tokenizer.encode_batch([(question, p) for p in passages])
        scores = np.zeros(len(encodings), dtype=np.float32)
        # one pair per run: the int8 graph quantises activations with one scale per run,
        # so in a padded batch a passage's score would depend on its neighbours
        for i, e in enumerate(encodings):
            feed = {"input_ids": np.asarray([e.ids], dtype=np.int64),
                    "attention_mask": np.asarray([e.attention_mask], dtype=np.int64),
                    "token_type_ids": np.asarray([e.type_ids], dtype=np.int64)}
            (out,) = self._session.run(["logits"], feed)  # thread-safe in onnxruntime
            scores[i] = float(np.asarray(out).reshape(-1)[0])
        return scores

    def probabilities(self, question: str, passages: Sequence[str]) -> np.ndarray:
        """The probability that each passage answers ``question`` (sigmoid of the logit)."""
        return np.asarray(1.0 / (1.0 + np.exp(-self.logits(question, passages))),
                          dtype=np.float32)
