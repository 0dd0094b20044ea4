"""Settings that shape an index, saved in its manifest and checked on load."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
#: The five articles, shipped inside the package (copied byte for byte at build time).
PACKAGED_CORPUS = PACKAGE_DIR / "data" / "corpus"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"

#: The longest question crampqa accepts, in characters (documented in docs/errors.md).
MAX_QUESTION_CHARS = 2000
#: The most passages one question may ask for.
MAX_K = 50


@dataclass(frozen=True)
class ChunkSettings:
    """How documents are cut into passages."""

    max_chars: int = 600
    version: int = 2  # 2: lists packed on their own, their introduction as context


@dataclass(frozen=True)
class RetrievalSettings:
    """How passages are ranked; stored with the index, overridable per query."""

    dense_candidates: int = 50
    lexical_candidates: int = 50
    fusion: str = "weighted"  # "weighted" | "rrf" | "dense" | "lexical"
    # weighted fusion: score = dense·w_d + lexical_norm·w_l (+ re-scoring features below);
    # weights chosen by a grid search on eval/questions.jsonl (docs/evaluation.md)
    dense_weight: float = 0.8
    lexical_weight: float = 0.1
    # the question with lay-to-clinical synonyms added (data/synonyms.json), embedded too
    expanded_dense_weight: float = 0.0
    rrf_k: int = 60
    rescore: bool = True
    sentence_weight: float = 0.1  # best sentence of the passage
    top2_weight: float = 0.0  # mean of its two best sentences
    expanded_sentence_weight: float = 0.3  # best sentence for the expanded question
    # confidence = the best similarity (passage or sentence, plain or expanded question)
    # among the top `confidence_depth` passages - oov_penalty · (share of question words
    # the corpus never uses, typos forgiven); abstain below the threshold
    oov_penalty: float = 0.5
    abstain_threshold: float = 0.46
    confidence_depth: int = 3
    diversity_margin: float = 0.08  # close = within this much of the best remaining score


@dataclass(frozen=True)
class IndexSettings:
    """Everything that decides what an index contains."""

    model: str = MODEL_NAME
    chunk: ChunkSettings = field(default_factory=ChunkSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    ann: str = "auto"  # "flat" | "hnsw" | "auto" (hnsw above crampqa.dense.HNSW_THRESHOLD)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexSettings:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        chunk = _build(ChunkSettings, data.get("chunk", {}))
        retrieval = _build(RetrievalSettings, data.get("retrieval", {}))
        return cls(
            model=str(data.get("model", MODEL_NAME)),
            chunk=chunk,
            retrieval=retrieval,
            ann=str(data.get("ann", "flat")),
        )

    def content_key(self) -> dict[str, Any]:
        """The part of the settings that changes index contents (not query-time knobs)."""
        return {"model": self.model, "chunk": asdict(self.chunk)}


def _build(kind: type[Any], data: dict[str, Any]) -> Any:
    names = {f.name for f in fields(kind)}
    return kind(**{k: v for k, v in data.items() if k in names})


def in_checkout() -> bool:
    """True when crampqa runs from a source checkout (an editable install, or the tree
    itself), False when it is installed as a package (``pipx install .``)."""
    return (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "corpus").is_dir()


def cache_dir() -> Path:
    """Where an installed crampqa keeps its indexes: the user's cache folder."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("crampqa", appauthor=False))


def default_corpus_dir() -> Path:
    """``$CRAMPQA_CORPUS``, else the checkout's ``corpus/``, else the articles shipped in
    the package."""
    env = os.environ.get("CRAMPQA_CORPUS")
    if env:
        return Path(env)
    return PROJECT_ROOT / "corpus" if in_checkout() else PACKAGED_CORPUS


def indexes_dir() -> Path:
    """The folder that holds crampqa's indexes: ``indexes/`` in a checkout, else the user's
    cache folder (e.g. ``~/.cache/crampqa/indexes``)."""
    return PROJECT_ROOT / "indexes" if in_checkout() else cache_dir() / "indexes"


def default_index_dir() -> Path:
    """``$CRAMPQA_INDEX``, else ``default`` in :func:`indexes_dir`."""
    env = os.environ.get("CRAMPQA_INDEX")
    return Path(env) if env else indexes_dir() / "default"
