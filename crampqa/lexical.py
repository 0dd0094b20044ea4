"""The lexical side: tokenising, lay-to-clinical synonyms and BM25 (bm25s)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Sequence
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
    whom why will with would you your yours yourself get got really thing things im ive dont
    doesnt cant wont isnt arent whats hows ok also much many lot lots per""".split()
)
#: Words that say how a question is asked, not what it is about: a reason never names them
#: as a subject the sources lack ("should I worry about …", "what helps …").
_FILLER = frozenset(
    """worry worried worrying concern concerned help helps helping helpful best better good
    bad normal okay fine safe need needs want wants know tell explain mean means cause causes
    causing happen happens happening make makes stop stops prevent way ways work works
    anything something someone anyone people person thing kind sort type types actually
    usually often always sometimes ever never still even maybe probably possible possibly
    likely quick quickly fast right wrong real really sure""".split()
)


#: BM25 parameters (bm25s's "lucene" scoring); the Milvus backend uses the same.
BM25_K1 = 1.2
BM25_B = 0.75

_LOCAL = threading.local()


def _stemmer() -> object | None:
    """This thread's English stemmer: a PyStemmer instance must not be used by two
    threads at once (the web service answers on more than one)."""
    stemmer: object | None = getattr(_LOCAL, "stemmer", False)
    if stemmer is False:
        try:
            import Stemmer

            stemmer = Stemmer.Stemmer("english")
        except ImportError:  # PyStemmer is a declared dependency; degrade rather than fail
            stemmer = None
        _LOCAL.stemmer = stemmer
    return stemmer


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


class SavedBM25:
    """Query side of a BM25 index saved by ``bm25s`` (``BM25.save``), with numpy alone.

    ``import bm25s`` pulls in numba, llvmlite, scipy and yaml (about 0.4 s per process),
    which dominated a cold ``crampqa ask``. The saved index holds every term's
    precomputed BM25 contributions as a CSC matrix (``data``/``indices``/``indptr``), so
    scoring is the same sums bm25s computes in ``get_scores`` (numpy backend), in the
    same order and dtype: identical scores. Offers the part of the ``bm25s.BM25``
    interface used here: ``vocab_dict`` and ``get_scores``.
    """

    #: bm25s methods that also add a non-occurrence array; those are left to bm25s.
    _NONOCCURRENCE = ("bm25l", "bm25+")

    def __init__(self, folder: Path, params: dict[str, object]) -> None:
        self.vocab_dict: dict[str, int] = json.loads(
            (folder / "vocab.index.json").read_text(encoding="utf-8")
        )
        arrays = {
            name: np.load(folder / f"{name}.csc.index.npy", mmap_mode="r", allow_pickle=False)
            for name in ("data", "indices", "indptr")
        }
        self._data, self._indices, self._indptr = (
            arrays["data"], arrays["indices"], arrays["indptr"]
        )
        self.num_docs = int(params["num_docs"])  # type: ignore[call-overload]
        self.dtype = np.dtype(str(params.get("dtype", "float32")))
        self.int_dtype = np.dtype(str(params.get("int_dtype", "int32")))

    @classmethod
    def open(cls, folder: Path) -> SavedBM25 | None:
        """The saved index in ``folder``, or None when bm25s itself must score it."""
        params = json.loads((folder / "params.index.json").read_text(encoding="utf-8"))
        if not isinstance(params, dict) or params.get("num_docs") is None:
            raise ValueError("params.index.json lacks num_docs")
        if str(params.get("method", "lucene")).lower() in cls._NONOCCURRENCE:
            return None
        return cls(folder, params)

    def get_scores(self, query_tokens: list[str]) -> np.ndarray:
        """BM25 score of every document: as ``bm25s.BM25.get_scores`` (numpy backend)."""
        ids = np.asarray(
            [self.vocab_dict[t] for t in query_tokens if t in self.vocab_dict],
            dtype=self.int_dtype,
        )
        if int(ids.max(initial=0)) >= len(self._indptr) - 1:
            raise ValueError("a query token ID lies outside the BM25 index")
        starts = self._indptr[ids]
        ends = self._indptr[ids + 1]
        scores = np.zeros(self.num_docs, dtype=self.dtype)
        for start, end in zip(starts, ends, strict=True):
            np.add.at(scores, self._indices[start:end], self._data[start:end])
        return scores


class LexicalIndex:
    """BM25 over passages, stored by bm25s as JSON and ``.npy`` files (no pickle)."""

    def __init__(self, retriever: object, size: int) -> None:
        self._retriever = retriever
        self.size = size
        self._initials: dict[str, list[str]] | None = None

    @classmethod
    def build(cls, texts: Sequence[str]) -> LexicalIndex:
        """Index ``texts`` (one per passage)."""
        import bm25s

        retriever = bm25s.BM25(k1=BM25_K1, b=BM25_B)
        corpus = [tokenize(t) or ["\u2205"] for t in texts]
        retriever.index(corpus, show_progress=False)
        return cls(retriever, len(texts))

    def save(self, folder: Path) -> None:
        """Write the index files into ``folder``."""
        self._retriever.save(str(folder), allow_pickle=False, show_progress=False)  # type: ignore[attr-defined]
        (folder / "size.json").write_text(json.dumps({"size": self.size}), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        """Memory-map a saved index (read with numpy alone; see :class:`SavedBM25`)."""
        retriever: object | None = SavedBM25.open(folder)
        if retriever is None:  # a scoring method the reader does not cover: use bm25s
            import bm25s

            retriever = bm25s.BM25.load(
                str(folder), mmap=True, allow_pickle=False, show_progress=False
            )
        size = int(json.loads((folder / "size.json").read_text(encoding="utf-8"))["size"])
        return cls(retriever, size)

    def _by_initial(self) -> dict[str, list[str]]:
        """Vocabulary terms by first letter, built on first use. Built whole, then
        published, so a thread never sees a half-built table (two threads may both
        build it; either result is the same)."""
        initials = self._initials
        if initials is None:
            initials = {}
            for term in self._retriever.vocab_dict:  # type: ignore[attr-defined]
                if term:
                    initials.setdefault(term[0], []).append(term)
            self._initials = initials
        return initials

    def _nearest(self, stem: str) -> str | None:
        """``stem`` if the corpus uses it, else a corpus term within a small edit of it
        (a typo), else None."""
        import difflib

        if stem in self._retriever.vocab_dict:  # type: ignore[attr-defined]
            return stem
        same_initial = self._by_initial().get(stem[0], [])
        near = [t for t in same_initial if abs(len(t) - len(stem)) <= 2]
        found = difflib.get_close_matches(stem, near, n=1, cutoff=0.8)
        return found[0] if found else None

    def _known(self, stem: str) -> bool:
        """Whether the corpus uses ``stem`` or a term within a small edit of it (a typo)."""
        return self._nearest(stem) is not None

    def corrected(self, question: str, surface: Callable[[str], str | None]) -> str:
        """The question with each typo of a corpus word replaced by that word as the
        corpus writes it (``surface`` maps a stem to it); other words are kept."""
        def fix(match: re.Match[str]) -> str:
            word = match.group(0)
            stems = tokenize(word)
            if not stems or stems[0] in self._retriever.vocab_dict:  # type: ignore[attr-defined]
                return word
            near = self._nearest(stems[0])
            return (surface(near) or word) if near else word

        return re.sub(r"[A-Za-z]{4,}", fix, question)

    def unknown_share(self, question: str) -> float:
        """Share of the question's content words the corpus never uses.

        A word within a small edit of a corpus word (a typo) counts as known, and so do the
        words of a lay phrase whose synonym the corpus uses ("charley horse").
        """
        tokens = tokenize(question)
        if not tokens:
            return 1.0
        covered = {stem for word in self._covered_by_synonyms(question)
                   for stem in tokenize(word)}
        return sum(not self._known(t) and t not in covered for t in tokens) / len(tokens)

    def unknown_words(self, question: str) -> list[str]:
        """The question's subject words (as written, lower case) that the corpus never
        uses; each once, in question order.

        Not counted: typos of corpus words, filler words that say how a question is asked
        ("worry", "helps"), and the words of a lay phrase whose synonym the corpus uses
        ("charley horse" when it says "cramp")."""
        covered = self._covered_by_synonyms(question)
        words: list[str] = []
        for word in _TOKEN.findall(question.lower()):
            word = word.replace("’", "'").split("'")[0]
            if not word or word in _STOPWORDS or word in _FILLER or word in covered \
                    or word in words:
                continue
            stems = tokenize(word)
            if stems and not self._known(stems[0]):
                words.append(word)
        return words

    def _covered_by_synonyms(self, question: str) -> set[str]:
        """Words of the question's lay phrases (synonym table) for which the corpus uses
        at least one of the phrase's synonyms."""
        lowered = " " + " ".join(_TOKEN.findall(question.lower())) + " "
        covered: set[str] = set()
        for phrase, targets in synonyms().items():
            if f" {phrase} " not in lowered:
                continue
            if any(all(self._known(stem) for stem in tokenize(target)) and tokenize(target)
                   for target in targets):
                covered.update(phrase.split())
        return covered

    def scores(self, question: str, expand: bool = True) -> np.ndarray:
        """BM25 score of every entry for ``question`` (synonyms added unless not
        ``expand``)."""
        tokens = tokenize(expand_query(question) if expand else question)
        vocab = self._retriever.vocab_dict  # type: ignore[attr-defined]
        known = [t for t in tokens if t in vocab]
        if not known:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._retriever.get_scores(known), dtype=np.float32)  # type: ignore[attr-defined]
