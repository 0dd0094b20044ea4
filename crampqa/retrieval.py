"""Ranking passages for a question. Pure computation over an opened index, in stages:

1. candidates: the dense and BM25 neighbours of the question, from a
   :class:`CandidateSource`: the index folder's FAISS and bm25s files
   (:class:`EmbeddedSource`), or a Milvus collection (:mod:`crampqa.milvus`);
2. features: passage, sentence and BM25 similarities of every candidate;
3. fusion: one score per candidate from its features (:data:`FUSIONS`), best first;
4. answer scoring: the answer scorer (:mod:`crampqa.scorer`) reads the question with each
   of the top fused candidates; they are ordered by fused score + ``scorer_weight`` × its
   probability that the passage answers (skipped in the fast mode, ``scorer = False``);
5. confidence and abstention: the fusion confidence (the best similarity among the top
   passages, less a penalty for unknown words) against ``abstain_threshold``; with the
   scorer, its best probability among the top passages plus that confidence's margin
   over ``abstain_threshold``, against ``scorer_threshold``;
6. diversity: near-duplicates and overlaps dropped, another article preferred among
   close scores.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from crampqa.abstention import asks_for_dose, has_number
from crampqa.chunking import KINDS
from crampqa.config import Fusion, RetrievalSettings
from crampqa.dense import DenseIndex
from crampqa.embedding import Encoder
from crampqa.lexical import LexicalIndex, expand_query, tokenize
from crampqa.scorer import PassageScorer
from crampqa.store import IndexData

TABLE_ROW = KINDS.index("table_row")


@dataclass
class Candidate:
    """A passage under consideration, with the features that ranked it."""

    row: int
    dense: float = 0.0
    lexical: float = 0.0  # raw BM25
    lexical_norm: float = 0.0  # BM25 / best BM25 for this question
    sentence: float = 0.0  # best sentence similarity within the passage
    top2: float = 0.0  # mean similarity of the two best sentences
    dense_expanded: float = 0.0  # similarity to the question with lay synonyms added
    sentence_expanded: float = 0.0  # best sentence similarity to that question
    sentence_rows: list[int] = field(default_factory=list)
    sentence_scores: list[float] = field(default_factory=list)
    #: the answer scorer's probability that the passage answers (None: not scored)
    probability: float | None = None
    score: float = 0.0


@dataclass
class Ranking:
    """Ranked candidates and the confidence that the top one answers the question."""

    candidates: list[Candidate]
    confidence: float
    abstained: bool


def _dense(cands: Sequence[Candidate], settings: RetrievalSettings) -> list[float]:
    return [c.dense for c in cands]


def _lexical(cands: Sequence[Candidate], settings: RetrievalSettings) -> list[float]:
    return [c.lexical_norm + 1e-3 * c.dense for c in cands]  # dense only breaks BM25 ties


def _rrf(cands: Sequence[Candidate], settings: RetrievalSettings) -> list[float]:
    """Reciprocal rank fusion of the dense ranking and the BM25 ranking."""
    by_dense = sorted(cands, key=lambda c: -c.dense)
    by_lex = sorted(cands, key=lambda c: -c.lexical)
    ranks_d = {c.row: r for r, c in enumerate(by_dense)}
    ranks_l = {c.row: r for r, c in enumerate(by_lex) if c.lexical > 0}
    scores = []
    for c in cands:
        score = 1.0 / (settings.rrf_k + ranks_d[c.row] + 1)
        if c.row in ranks_l:
            score += 1.0 / (settings.rrf_k + ranks_l[c.row] + 1)
        scores.append(score)
    return scores


def _weighted(cands: Sequence[Candidate], settings: RetrievalSettings) -> list[float]:
    """Weighted sum of the features (sentence features only with ``rescore``)."""
    scores = []
    for c in cands:
        score = (settings.dense_weight * c.dense
                 + settings.expanded_dense_weight * c.dense_expanded
                 + settings.lexical_weight * c.lexical_norm)
        if settings.rescore:
            score += settings.sentence_weight * c.sentence
            score += settings.top2_weight * c.top2
            score += settings.expanded_sentence_weight * c.sentence_expanded
        scores.append(score)
    return scores


#: A fusion: one score per candidate, from the candidates' features and the settings.
FusionFn = Callable[[Sequence["Candidate"], RetrievalSettings], list[float]]
#: Every fusion, by name. Each is a pure function of the candidates and the settings.
FUSIONS: dict[Fusion, FusionFn] = {
    Fusion.WEIGHTED: _weighted,
    Fusion.RRF: _rrf,
    Fusion.DENSE: _dense,
    Fusion.LEXICAL: _lexical,
}


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores, best first (argpartition, then sort)."""
    if k >= len(scores):
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, k)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


@dataclass
class LexicalHits:
    """A question's BM25 neighbours: the top rows (score > 0) best first, their scores,
    the best score, and a way to score any other rows (0: no query term)."""

    rows: np.ndarray
    scores: np.ndarray
    score_rows: Callable[[np.ndarray], np.ndarray]

    @property
    def best(self) -> float:
        """The best BM25 score of any passage (0 when no passage has a query term)."""
        return float(self.scores[0]) if self.scores.size else 0.0


class CandidateSource(Protocol):
    """Candidate generation: the dense and BM25 neighbours of a question, by passage row
    of the opened index version. Everything after it (features, fusion, the answer
    scorer, abstention, presentation) is the same for every source."""

    #: "embedded" or "milvus"
    name: str

    def dense_rows(self, vectors: Sequence[np.ndarray], k: int) -> list[np.ndarray]:
        """For each vector, the rows of its ``k`` nearest passages (inner product)."""
        ...

    def lexical_hits(self, question: str, k: int) -> LexicalHits:
        """The question's ``k`` best passages by BM25 (synonyms added)."""
        ...


class EmbeddedSource:
    """Candidates from the index folder itself: FAISS and the bm25s arrays."""

    name = "embedded"

    def __init__(self, dense: DenseIndex, lexical: LexicalIndex) -> None:
        self.dense = dense
        self.lexical = lexical

    def dense_rows(self, vectors: Sequence[np.ndarray], k: int) -> list[np.ndarray]:
        """FAISS search, one vector at a time."""
        return [self.dense.search(vector, k)[0] for vector in vectors]

    def lexical_hits(self, question: str, k: int) -> LexicalHits:
        """Every passage's BM25 score; the top ``k`` of those above 0."""
        scores = self.lexical.scores(question)
        top = _top(scores, k) if scores.size and float(scores.max()) > 0 \
            else np.zeros(0, dtype=np.int64)
        top = top[scores[top] > 0]
        return LexicalHits(top, scores[top], lambda rows: scores[rows])


class Retriever:
    """Search over one opened index version."""

    def __init__(
        self,
        data: IndexData,
        encoder: Encoder,
        lexical: LexicalIndex,
        dense: DenseIndex | None,
        scorer: PassageScorer | None = None,
        source: CandidateSource | None = None,
    ) -> None:
        self.data = data
        self.encoder = encoder
        #: the BM25 vocabulary is also read for abstention (unknown words) and typos
        self.lexical = lexical
        if source is None:
            if dense is None:
                raise ValueError("a Retriever needs a dense index or a candidate source")
            source = EmbeddedSource(dense, lexical)
        self.source = source
        self._scorer = scorer
        self._scorer_lock = threading.Lock()
        self._surfaces: dict[str, str] | None = None
        # sentences are stored in passage order: row ranges by binary search
        self._sentence_passage = np.asarray(data.sentences[:, 0])

    @property
    def dense(self) -> DenseIndex | None:
        """The FAISS index the embedded source searches (None for another source)."""
        return self.source.dense if isinstance(self.source, EmbeddedSource) else None

    @dense.setter
    def dense(self, index: DenseIndex) -> None:
        if not isinstance(self.source, EmbeddedSource):
            raise ValueError("only the embedded source searches a FAISS index")
        self.source.dense = index

    @property
    def scorer(self) -> PassageScorer:
        """The answer scorer, loaded (and its SHA-256 checked) on first use: the fast
        mode never loads it."""
        if self._scorer is None:
            with self._scorer_lock:
                if self._scorer is None:
                    self._scorer = PassageScorer.load()
        return self._scorer

    def _surface_form(self, stem: str) -> str | None:
        """The commonest word of the corpus with this stem (built on first use)."""
        if self._surfaces is None:
            counts: dict[str, dict[str, int]] = {}
            for doc in self.data.documents:
                for word in set(re.findall(r"[a-z]{4,}", doc.text.lower())):
                    stems = tokenize(word)
                    if stems:
                        forms = counts.setdefault(stems[0], {})
                        forms[word] = forms.get(word, 0) + 1
            self._surfaces = {s: max(f, key=lambda w: (f[w], w)) for s, f in counts.items()}
        return self._surfaces.get(stem)

    def embed_question(self, question: str) -> np.ndarray:
        """The question's unit vector."""
        vector: np.ndarray = self.encoder.encode([question])[0]
        return vector

    def embed_questions(self, question: str) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors of the question and of the question with its lay-to-clinical
        synonyms added (the same vector when no synonym applies); one encoder call."""
        expanded = expand_query(question)
        if expanded == question:
            vector = self.embed_question(question)
            return vector, vector
        both = self.encoder.encode([question, expanded])
        return both[0], both[1]

    def rank(
        self, question: str, k: int, settings: RetrievalSettings, diversify: bool = True,
        scorer_depth: int | None = None,
    ) -> Ranking:
        """Rank passages for ``question``; at most ``k`` results (distinct with ``diversify``).

        With the scorer on, the top ``scorer_depth`` fused candidates are scored (default:
        ``settings.scorer_candidates``, or ``k`` when more are asked for)."""
        query, expanded = self.embed_questions(question)
        fusion = settings.fusion
        candidates: dict[int, Candidate] = {}
        if fusion is not Fusion.LEXICAL:
            asked = (query, expanded) if expanded is not query else (query,)
            for rows in self.source.dense_rows(asked, settings.dense_candidates):
                for row in rows:
                    candidates.setdefault(int(row), Candidate(int(row)))
        lex = self.source.lexical_hits(question, settings.lexical_candidates)
        best_lex = lex.best
        if fusion is not Fusion.DENSE:
            for row in lex.rows:
                candidates.setdefault(int(row), Candidate(int(row)))
        if not candidates:
            return Ranking([], 0.0, True)
        rows_arr = np.fromiter(candidates, dtype=np.int64)
        lex_scores = lex.score_rows(rows_arr)
        vectors = np.asarray(self.data.embeddings[rows_arr], dtype=np.float32)
        dense, dense_exp = vectors @ query, vectors @ expanded
        kinds = np.asarray(self.data.passages.kinds[rows_arr])
        # every sentence of every candidate against both question vectors, in one product
        lo = np.searchsorted(self._sentence_passage, rows_arr)
        hi = np.searchsorted(self._sentence_passage, rows_arr + 1)
        counts = hi - lo
        ends = np.cumsum(counts)
        sentence_rows = np.repeat(lo - (ends - counts), counts) + np.arange(int(ends[-1]))
        block = np.asarray(self.data.sentence_embeddings[sentence_rows], dtype=np.float32)
        sims = (block @ np.stack([query, expanded]).T).T
        for i, row in enumerate(rows_arr):
            cand = candidates[int(row)]
            cand.dense = float(dense[i])
            cand.dense_expanded = float(dense_exp[i])
            cand.lexical = float(lex_scores[i])
            cand.lexical_norm = cand.lexical / best_lex if best_lex > 0 else 0.0
            start, end = int(ends[i] - counts[i]), int(ends[i])
            self._sentence_features(cand, sentence_rows[start:end], sims[:, start:end],
                                    expanded is not query)
            if kinds[i] == TABLE_ROW:
                # a table row is one unit whose meaning needs its heading and header
                # (which the passage vector has and the row's "sentence" lacks)
                cand.sentence = max(cand.sentence, cand.dense)
                cand.top2 = max(cand.top2, cand.dense)
                cand.sentence_expanded = max(cand.sentence_expanded, cand.dense_expanded)
        ranked = fuse(list(candidates.values()), settings)
        depth_top = max(1, settings.confidence_depth)
        unknown = self.lexical.unknown_share(question)
        confidence = max(
            max(c.dense, c.sentence, c.dense_expanded, c.sentence_expanded)
            for c in ranked[:depth_top]
        ) - settings.oov_penalty * unknown
        abstained = confidence < settings.abstain_threshold
        if settings.scorer:
            depth = max(settings.scorer_candidates, k) if scorer_depth is None else scorer_depth
            ranked = self.score_answers(question, ranked, depth, settings.scorer_weight)
            best = max(c.probability or 0.0 for c in ranked[:depth_top])
            confidence = best + confidence - settings.abstain_threshold
            abstained = confidence < settings.scorer_threshold
            if not abstained and asks_for_dose(question) and not any(
                    has_number(self.data.passages.text(c.row)) for c in ranked[:depth_top]):
                # a dose asked for and no number in the best passages: a neighbouring
                # passage on the subject is not an answer, however well the scorer rates it
                abstained = True
        ranked = self._answer_first(ranked, max(settings.scorer_candidates, k))
        chosen = self._diversify(ranked, k, settings.diversity_margin) if diversify \
            else ranked[:k]
        return Ranking(chosen, confidence, abstained)

    def score_answers(
        self, question: str, ranked: list[Candidate], depth: int, weight: float
    ) -> list[Candidate]:
        """The top ``depth`` of ``ranked`` scored by the answer scorer and ordered by
        fused score + ``weight`` · probability (ties keep the fused order); the rest
        follow in fused order."""
        head, tail = ranked[:depth], ranked[depth:]
        table = self.data.passages
        # the scorer reads words, not stems: typos of corpus words are spelled as the
        # corpus spells them (retrieval itself already forgives them)
        question = self.lexical.corrected(question, self._surface_form)
        probs = self.scorer.probabilities(question, [table.indexed_text(c.row) for c in head])
        for cand, prob in zip(head, probs, strict=True):
            cand.probability = float(prob)
            cand.score += weight * cand.probability
        return sorted(head, key=lambda c: -c.score) + tail

    def _answer_first(self, ranked: list[Candidate], depth: int) -> list[Candidate]:
        """``ranked`` with a passage that cannot be an answer moved off the first place.

        A passage whose text ends in a question ("So, what can cause leg cramps?") or in a
        colon ("Here is a comparison of some popular options:") introduces what follows
        rather than answering; when one leads and a passage that does not end so is among
        the top ``depth``, that passage goes first and the rest keep their order."""
        table = self.data.passages
        if not ranked or not is_lead_in(table.text(ranked[0].row)):
            return ranked
        for i, cand in enumerate(ranked[:depth]):
            if not is_lead_in(table.text(cand.row)):
                return [cand, *ranked[:i], *ranked[i + 1:]]
        return ranked

    def _sentence_features(
        self, cand: Candidate, rows: np.ndarray, sims: np.ndarray, expanded: bool
    ) -> None:
        """Sentence features of ``cand`` from its sentences' similarities (row 0: the
        question, row 1: the expanded question)."""
        if not rows.size:
            cand.sentence = cand.top2 = cand.dense
            cand.sentence_expanded = cand.dense_expanded
            return
        scores = sims[0]
        cand.sentence_rows = rows.tolist()
        cand.sentence_scores = scores.tolist()
        cand.sentence = float(scores.max())
        cand.top2 = float(np.sort(scores)[-2:].mean())
        cand.sentence_expanded = float(sims[1].max()) if expanded else cand.sentence

    def _diversify(self, ranked: list[Candidate], k: int, margin: float) -> list[Candidate]:
        """Drop near-duplicates and overlaps; among close scores, prefer a new article."""
        table = self.data.passages
        chosen: list[Candidate] = []
        vectors: list[np.ndarray] = []
        docs: set[int] = set()
        pool = list(ranked)
        while pool and len(chosen) < k:
            best = pool[0]
            pick = best
            if chosen:
                for cand in pool:
                    if best.score - cand.score > margin:
                        break
                    if table.doc_number(cand.row) not in docs:
                        pick = cand
                        break
            pool.remove(pick)
            vec = np.asarray(self.data.embeddings[pick.row])
            if any(float(vec @ v) > 0.97 for v in vectors) or \
                    any(table.overlaps(pick.row, other.row) for other in chosen):
                continue
            chosen.append(pick)
            vectors.append(vec)
            docs.add(table.doc_number(pick.row))
        return chosen

    def highlights(self, cand: Candidate, max_sentences: int = 2) -> list[tuple[int, int]]:
        """Document offsets of the sentences that best answer the question."""
        if not cand.sentence_rows:
            return [self.data.passages.span(cand.row)]
        best = max(cand.sentence_scores)
        order = sorted(range(len(cand.sentence_rows)), key=lambda i: -cand.sentence_scores[i])
        picked = [i for i in order[:max_sentences] if cand.sentence_scores[i] >= best - 0.05]
        spans = [
            (int(self.data.sentences[cand.sentence_rows[i]][1]),
             int(self.data.sentences[cand.sentence_rows[i]][2]))
            for i in sorted(picked)
        ]
        return spans


def is_lead_in(text: str) -> bool:
    """Whether a passage ends as an introduction does: in a question or a colon."""
    return text.rstrip().rstrip("\"”’')*_").endswith(("?", ":"))


def fuse(cands: list[Candidate], settings: RetrievalSettings) -> list[Candidate]:
    """Score ``cands`` with the settings' fusion; best first (ties: lower row first)."""
    for c, score in zip(cands, FUSIONS[settings.fusion](cands, settings), strict=True):
        c.score = score
    return sorted(cands, key=lambda c: (-c.score, c.row))


def with_overrides(settings: RetrievalSettings, **overrides: object) -> RetrievalSettings:
    """A copy of ``settings`` with the non-None ``overrides`` applied (and validated)."""
    changes: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    return replace(settings, **changes)
