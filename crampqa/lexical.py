"""The lexical side: tokenising, lay-to-clinical synonyms and BM25 (bm25s)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

_TOKEN = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not of off on once only or other our ours out
    over own same she should so some such than that the their theirs them then there these they
    this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself get got really thing things""".split()
)


@cache
def _stemmer() -> object | None:
    try:
        import Stemmer

        return Stemmer.Stemmer("english")
    except ImportError:  # PyStemmer is a declared dependency; degrade rather than fail
        return None


@cache
def synonyms() -> dict[str, tuple[str, ...]]:
    """The lay-to-clinical synonym table shipped in ``crampqa/data/synonyms.json``."""
    raw = json.loads(resources.files("crampqa").joinpath("data/synonyms.json").read_text("utf-8"))
    return {k.lower(): tuple(v) for k, v in raw.items() if not k.startswith("_")}


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop-word-free, stemmed word tokens."""
    words = [w.replace("’", "'").split("'")[0] for w in _TOKEN.findall(text.lower())]
    words = [w for w in words if w and w not in _STOPWORDS]
    stemmer = _stemmer()
    if stemmer is not None:
        return list(stemmer.stemWords(words))  # type: ignore[attr-defined]
    return words


def expand_query(question: str) -> str:
    """The question plus synonyms of any lay phrase in it (for BM25 only)."""
    lowered = " " + " ".join(_TOKEN.findall(question.lower())) + " "
    extra: list[str] = []
    for phrase, targets in synonyms().items():
        if f" {phrase} " in lowered:
            extra.extend(targets)
    return question if not extra else question + " " + " ".join(extra)


class LexicalIndex:
    """BM25 over passages, stored by bm25s as JSON and ``.npy`` files (no pickle)."""

    def __init__(self, retriever: object, size: int) -> None:
        self._retriever = retriever
        self.size = size

    @classmethod
    def build(cls, texts: Sequence[str]) -> LexicalIndex:
        """Index ``texts`` (one per passage)."""
        import bm25s

        retriever = bm25s.BM25(k1=1.2, b=0.75)
        corpus = [tokenize(t) or ["\u2205"] for t in texts]
        retriever.index(corpus, show_progress=False)
        return cls(retriever, len(texts))

    def save(self, folder: Path) -> None:
        """Write the index files into ``folder``."""
        self._retriever.save(str(folder), allow_pickle=False, show_progress=False)  # type: ignore[attr-defined]
        (folder / "size.json").write_text(json.dumps({"size": self.size}), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        """Memory-map a saved index."""
        import bm25s

        retriever = bm25s.BM25.load(
            str(folder), mmap=True, allow_pickle=False, show_progress=False
        )
        size = int(json.loads((folder / "size.json").read_text(encoding="utf-8"))["size"])
        return cls(retriever, size)

    def scores(self, question: str) -> np.ndarray:
        """BM25 score of every passage for ``question`` (synonyms added)."""
        tokens = tokenize(expand_query(question))
        vocab = self._retriever.vocab_dict  # type: ignore[attr-defined]
        known = [t for t in tokens if t in vocab]
        if not known:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._retriever.get_scores(known), dtype=np.float32)  # type: ignore[attr-defined]
