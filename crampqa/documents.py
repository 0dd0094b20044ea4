"""Whole-document evidence: document vectors, title vectors and document-level BM25.

Passages are what crampqa shows; documents are what a document-level set (BEIR) ranks.
A version folder may hold, besides its passage index (listed in the manifest's
``document_level`` record)::

    doc_embeddings.npy     float32 (documents, d): the vector of the document's first
                           passage (its opening; document-level version 2). Version 1
                           embedded title + text once more, truncated by the model, so
                           in practice the same opening, at a quarter of a build's time
    title_embeddings.npy   float32 (documents, d): the title alone (zeros without a title)
    bm25_docs/             bm25s index over title + text, one entry per document

``crampqa index`` writes them with every new version (reusing the vectors of unchanged
documents); ``crampqa index --document-vectors`` adds them to an existing version without
re-embedding its passages. They feed two things only: the ``naive`` reference ranking of
``crampqa eval`` (whole documents, dense and BM25 fused by reciprocal rank) and the
document evidence that :meth:`crampqa.CrampQA.rank_documents` adds to a document's best
passage. Nothing here is ever shown as answer text: answers stay verbatim passages.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from crampqa.config import Progress
from crampqa.corpus import Document
from crampqa.errors import REBUILD_HINT, IndexError_
from crampqa.lexical import LexicalIndex

if TYPE_CHECKING:
    from crampqa.embedding import Embedder
    from crampqa.indexing import Runner
    from crampqa.store import IndexData

#: Bumped when what is embedded or indexed per document changes.
DOCUMENT_LEVEL_VERSION = 2
DOC_VECTORS = "doc_embeddings.npy"
TITLE_VECTORS = "title_embeddings.npy"
DOC_BM25 = "bm25_docs"


def add_hint(index: Path) -> str:
    """What a user is told when the index in ``index`` lacks the document-level files."""
    return (f"add them with `crampqa index --document-vectors --index {index}` (embeds each "
            "document once; the passages are not re-embedded)")


#: Reciprocal rank fusion constant of the naive ranking, and how deep each list is read.
NAIVE_RRF_K = 60
NAIVE_DEPTH = 100
EMBED_BATCH = 64


def has_title(doc: Document) -> bool:
    """Whether ``doc`` has a real title (a BEIR document without one is titled by its ID)."""
    return bool(doc.title.strip()) and doc.title != doc.doc_id


def whole_text(doc: Document) -> str:
    """Title + text of a document, as embedded and indexed whole. A BEIR document's text
    already starts with its title; an article's title is put in front of its text."""
    if not has_title(doc) or doc.text.startswith(doc.title):
        return doc.text
    return f"{doc.title}\n\n{doc.text}"


def record(how: str) -> dict[str, Any]:
    """The manifest's ``document_level`` entry for files written by ``how``."""
    return {
        "version": DOCUMENT_LEVEL_VERSION,
        "text": "the first passage's vector; titles alone",
        "files": [DOC_VECTORS, TITLE_VECTORS, DOC_BM25 + "/"],
        "added": how,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def first_passage_vectors(n_documents: int, passage_docs: NDArray[np.int64],
                          passage_vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    """Each document's vector: its first passage's (passages are stored in document
    order); zeros for a document without passages."""
    out = np.zeros((n_documents, passage_vectors.shape[1]), dtype=np.float32)
    docs = np.asarray(passage_docs, dtype=np.int64)
    if docs.size:
        numbers, first_rows = np.unique(docs, return_index=True)
        out[numbers] = np.asarray(passage_vectors, dtype=np.float32)[first_rows]
    return out


def embed_documents(
    documents: Sequence[Document], embedder: Embedder, runner: Runner,
    passage_docs: NDArray[np.int64], passage_vectors: NDArray[np.float32],
    previous: IndexData | None = None, progress: Progress | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Document and title vectors. A document's vector is its first passage's (nothing
    is embedded for it: measured on MedQuAD, `benchmarks/derived_doc_vectors.py`); titles
    are copied from ``previous`` for unchanged documents (same ID and content hash, when
    it has them) and embedded otherwise, by ``runner`` (in this process, or on the Ray
    cluster of a ``--engine ray`` build)."""
    vectors = first_passage_vectors(len(documents), passage_docs, passage_vectors)
    titles = np.zeros((len(documents), embedder.dim), dtype=np.float32)
    old = DocumentLevel.load(previous) if previous is not None else None
    todo: list[int] = []
    for i, doc in enumerate(documents):
        j = previous.doc_index.get(doc.doc_id) if previous is not None else None
        if old is not None and previous is not None and j is not None \
                and previous.documents[j].sha256 == doc.sha256:
            titles[i] = old.titles[j]
        else:
            todo.append(i)
    from crampqa.indexing import embed_jobs

    embed_jobs(runner, embedder,
               [(i, documents[i].title) for i in todo if has_title(documents[i])],
               titles, "titles", progress)
    return vectors, titles


def write_document_level(
    folder: Path, documents: Sequence[Document],
    vectors: tuple[NDArray[np.float32], NDArray[np.float32]],
) -> None:
    """Write the document vectors, title vectors and document BM25 into ``folder``."""
    from crampqa.store import write_arrays

    write_arrays(folder, **{DOC_VECTORS[:-4]: vectors[0], TITLE_VECTORS[:-4]: vectors[1]})
    lexical = LexicalIndex.build([whole_text(doc) for doc in documents])
    (folder / DOC_BM25).mkdir()
    lexical.save(folder / DOC_BM25)


@dataclass
class DocumentLevel:
    """The document-level files of an opened version (arrays memory-mapped)."""

    vectors: NDArray[np.float32]
    titles: NDArray[np.float32]
    lexical: LexicalIndex

    @classmethod
    def load(cls, data: IndexData) -> DocumentLevel | None:
        """The version's document-level files, or None when it was built without them."""
        if not data.manifest.document_level:
            return None
        folder = data.folder
        try:
            vectors, titles = (
                np.asarray(np.load(folder / name, mmap_mode="r", allow_pickle=False))
                for name in (DOC_VECTORS, TITLE_VECTORS))
            lexical = LexicalIndex.load(folder / DOC_BM25)
        except (OSError, ValueError, KeyError) as exc:
            raise IndexError_(f"The document vectors in {folder} are damaged ({exc}); "
                              f"{REBUILD_HINT}.") from None
        n = len(data.documents)
        if vectors.shape != (n, data.manifest.dim) or titles.shape != vectors.shape \
                or lexical.size != n:
            raise IndexError_(f"The document vectors in {folder} do not match its "
                              f"documents; {REBUILD_HINT}.")
        return cls(vectors, titles, lexical)

    def naive(self, question: str, vector: NDArray[np.float32], k: int) -> list[tuple[int, float]]:
        """The naive reference ranking: cosine with each whole document and BM25 over
        title + text (no synonyms), fused by reciprocal rank (k = 60); ``[(document
        number, score)]``, best first."""
        dense = np.asarray(self.vectors @ vector, dtype=np.float32)
        lexical = self.lexical.scores(question, expand=False)
        fused: dict[int, float] = {}
        for scores, positive in ((dense, False), (lexical, True)):
            for rank, doc in enumerate(_top(scores, NAIVE_DEPTH), start=1):
                if positive and scores[doc] <= 0:
                    break
                fused[int(doc)] = fused.get(int(doc), 0.0) + 1.0 / (NAIVE_RRF_K + rank)
        ranked = sorted(fused.items(), key=lambda item: (-item[1], item[0]))
        return ranked[:k]


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores, best first (ties: lower index first)."""
    if k < len(scores):
        part = np.argpartition(-scores, k)[:k]
        return part[np.lexsort((part, -scores[part]))]
    return np.lexsort((np.arange(len(scores)), -scores))


@dataclass(frozen=True)
class DocumentWeights:
    """How a document's score adds document evidence to its best passage's score:
    ``best + vector·cos(question, title + opening) + title·cos(question, title)
    + lexical·BM25/best BM25 (whole documents) + passages·(soft maximum - best)``, where
    the soft maximum over the document's candidate passages is ``t·log Σ exp(s/t)``."""

    vector: float = 0.0
    title: float = 0.0
    lexical: float = 0.0
    passages: float = 0.0
    temperature: float = 0.05
    #: the answer scorer's weight in a passage's score when ranking documents (None: the
    #: passage order's own ``scorer_weight``)
    scorer: float | None = None
    #: documents added by their own vector or BM25 besides those of the passages
    extra: int = 20

    @property
    def active(self) -> bool:
        """Whether any document evidence takes part."""
        return any((self.vector, self.title, self.lexical))


def passage_only(passage_docs: Sequence[int]) -> DocumentEvidence:
    """No document evidence: the candidate passages' documents, every feature zero."""
    docs = np.asarray(sorted(set(int(d) for d in passage_docs)), dtype=np.int64)
    zeros = np.zeros(len(docs), dtype=np.float32)
    return DocumentEvidence(docs, zeros, zeros, zeros)


@dataclass
class DocumentEvidence:
    """One question's document evidence for its candidate documents (document numbers)."""

    docs: NDArray[np.int64]
    vector: NDArray[np.float32]
    title: NDArray[np.float32]
    lexical: NDArray[np.float32]  # BM25 over whole documents / its best for the question


def evidence(
    level: DocumentLevel, question: str, vector: NDArray[np.float32],
    passage_docs: Sequence[int], extra: int,
) -> DocumentEvidence:
    """The documents of the candidate passages plus the ``extra`` best by their own vector
    and by BM25, with each one's document evidence."""
    dense = np.asarray(level.vectors @ vector, dtype=np.float32)
    lexical = level.lexical.scores(question)
    best_lex = float(lexical.max()) if lexical.size else 0.0
    chosen = set(int(d) for d in passage_docs)
    if extra > 0:
        chosen.update(int(d) for d in _top(dense, extra))
        chosen.update(int(d) for d in _top(lexical, extra) if lexical[d] > 0)
    docs = np.asarray(sorted(chosen), dtype=np.int64)
    return DocumentEvidence(
        docs=docs,
        vector=dense[docs],
        title=np.asarray(level.titles[docs] @ vector, dtype=np.float32),
        lexical=(lexical[docs] / best_lex if best_lex > 0 else np.zeros(len(docs)))
        .astype(np.float32),
    )


def combine(
    passage_docs: Sequence[int], passage_scores: Sequence[float], found: DocumentEvidence,
    weights: DocumentWeights,
) -> list[tuple[int, float]]:
    """Document scores from their passages' scores and their document evidence;
    ``[(document number, score)]``, best first. A document none of whose passages is a
    candidate counts the lowest candidate score as its best."""
    scores = np.asarray(passage_scores, dtype=np.float64)
    floor = float(scores.min()) if scores.size else 0.0
    best: dict[int, float] = {}
    for doc, score in zip(passage_docs, scores, strict=True):
        best[int(doc)] = max(best.get(int(doc), -np.inf), float(score))
    t = max(weights.temperature, 1e-6)
    soft: dict[int, float] = {}
    for doc, score in zip(passage_docs, scores, strict=True):
        soft[int(doc)] = soft.get(int(doc), 0.0) + float(np.exp((score - best[int(doc)]) / t))
    out: list[tuple[int, float]] = []
    for i, doc in enumerate(found.docs.tolist()):
        top = best.get(doc, floor)
        value = (top + weights.vector * float(found.vector[i])
                 + weights.title * float(found.title[i])
                 + weights.lexical * float(found.lexical[i])
                 + weights.passages * t * float(np.log(soft.get(doc, 1.0))))
        out.append((doc, value))
    return sorted(out, key=lambda item: (-item[1], item[0]))
