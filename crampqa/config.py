"""Settings that shape an index, saved in its manifest and checked on load."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, Self, TypeVar

from crampqa.errors import InputError

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
#: The five articles, shipped inside the package (copied byte for byte at build time).
PACKAGED_CORPUS = PACKAGE_DIR / "data" / "corpus"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"

#: The longest question crampqa accepts, in characters (documented in docs/errors.md).
MAX_QUESTION_CHARS = 2000
#: The most passages one question may ask for.
MAX_K = 50
#: Corpus files larger than this many megabytes are skipped; ``CRAMPQA_MAX_FILE_MB``
#: changes it (docs/errors.md). A BEIR corpus.jsonl is read as a stream and not limited.
DEFAULT_MAX_FILE_MB = 10.0
#: The largest CRAMPQA_MAX_FILE_MB accepted (1 TB): beyond it a byte count overflows.
MAX_FILE_MB_LIMIT = 1_000_000
#: Passages per answer when a question does not say (CLI, API and web service).
DEFAULT_K = 3

#: ``(stage, done, total)``: how index builds and evaluations report their progress.
Progress = Callable[[str, int, int], None]


def check_k(k: object, maximum: int | None = MAX_K) -> int:
    """``k`` if it is a whole number from 1 to ``maximum`` (None: no upper bound)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1 or (maximum and k > maximum):
        top = f" to {maximum}" if maximum else " or more"
        raise InputError(f"k must be a whole number from 1{top} (got {k!r}).")
    return k


class _Choice(StrEnum):
    """A setting with a fixed set of string values."""

    @classmethod
    def parse(cls, value: object) -> Self:
        """The member named ``value``, or an :class:`InputError` listing the choices."""
        try:
            return cls(str(value))
        except ValueError:
            raise InputError(_UNKNOWN[cls.__name__].format(value=value, choices=", ".join(cls))) \
                from None


class Fusion(_Choice):
    """How the dense and lexical candidate scores are combined (crampqa.retrieval.FUSIONS)."""

    WEIGHTED = "weighted"
    RRF = "rrf"
    DENSE = "dense"
    LEXICAL = "lexical"


class AnnKind(_Choice):
    """The dense index type: exact, HNSW, or chosen by size (crampqa.dense)."""

    FLAT = "flat"
    HNSW = "hnsw"
    AUTO = "auto"


class BuildEngine(_Choice):
    """Where a build chunks and embeds: in this process, or on a Ray cluster."""

    LOCAL = "local"
    RAY = "ray"


class Backend(_Choice):
    """Where candidate passages are searched: the index folder (FAISS + bm25s) or Milvus."""

    EMBEDDED = "embedded"
    MILVUS = "milvus"


#: What an unknown value of each choice says (docs/errors.md lists these messages).
_UNKNOWN = {
    "Fusion": "Unknown fusion '{value}' (choose {choices}).",
    "AnnKind": "Unknown --ann '{value}' (choose flat, hnsw or auto).",
    "BuildEngine": "Unknown --engine '{value}' (choose local or ray).",
    "Backend": "Unknown --backend '{value}' (choose embedded or milvus).",
}

#: The Milvus collection crampqa uses unless told otherwise.
DEFAULT_COLLECTION = "crampqa_passages"
_COLLECTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


@dataclass(frozen=True)
class SearchSettings:
    """Where an index's candidates are searched (``crampqa index --backend``), recorded
    in the manifest's ``search`` entry. The index folder always keeps the documents,
    passages and vectors: Milvus holds a copy of the vectors and the BM25 terms."""

    backend: Backend = Backend.EMBEDDED
    uri: str = ""
    collection: str = DEFAULT_COLLECTION

    def __post_init__(self) -> None:
        object.__setattr__(self, "backend", Backend.parse(self.backend))
        if self.backend is Backend.MILVUS and not self.uri:
            raise InputError("--backend milvus needs --uri URI (e.g. http://127.0.0.1:19530).")
        if self.backend is Backend.EMBEDDED and self.uri:
            raise InputError("--uri is only used with --backend milvus.")
        if not _COLLECTION_NAME.fullmatch(self.collection):
            raise InputError(f"Bad Milvus collection name '{self.collection}' (letters, digits "
                             "and underscores, not starting with a digit).")

    def to_dict(self) -> dict[str, str]:
        """The manifest's ``search`` entry."""
        if self.backend is Backend.EMBEDDED:
            return {"backend": self.backend.value}
        return {"backend": self.backend.value, "uri": self.uri, "collection": self.collection}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSettings:
        """Inverse of :meth:`to_dict` (an empty entry: the embedded backend)."""
        return cls(Backend.parse(data.get("backend", "embedded")), str(data.get("uri", "")),
                   str(data.get("collection", DEFAULT_COLLECTION)))


@dataclass(frozen=True)
class EngineSettings:
    """Where a build runs its chunking and embedding (crampqa/ray_build.py).

    Not saved in the manifest: both engines write the same index version. Planning
    (what changed) and the final write stay in the building process either way.
    """

    engine: BuildEngine = BuildEngine.LOCAL
    #: ray: ``HOST:PORT`` of a running Ray head; None starts a private local one
    address: str | None = None
    #: ray: embedding workers (each loads the model once); None: one per CPU of the cluster
    workers: int | None = None
    #: ray: CPUs each embedding worker reserves (and torch threads it uses)
    cpus_per_worker: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "engine", BuildEngine.parse(self.engine))
        if self.address is not None and self.engine is not BuildEngine.RAY:
            raise InputError("--address needs --engine ray.")
        if self.address is not None and not _is_host_port(self.address):
            raise InputError(f"--address must be HOST:PORT, e.g. 10.0.0.5:6379 "
                             f"(got {self.address!r}).")
        for name in ("workers", "cpus_per_worker"):
            value = getattr(self, name)
            if value is None and name == "workers":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name.replace('_', ' ')} must be a whole number of at "
                                 f"least 1 (got {value!r}).")


def _is_host_port(address: str) -> bool:
    host, sep, port = address.rpartition(":")
    return bool(sep and host.strip() and port.isdigit() and 0 < int(port) < 65536)


@dataclass(frozen=True)
class ChunkSettings:
    """How documents are cut into passages."""

    max_chars: int = 600
    # 2 was given to two separate changes: a document of only heading-like lines is one
    # passage instead of none, and lists are packed on their own with their introduction
    # as context. 3: both changes together. 4: a sentence over twice max_chars (a long run
    # without punctuation) is cut at word boundaries into pieces of at most max_chars.
    version: int = 4


@dataclass(frozen=True)
class RetrievalSettings:
    """How passages are ranked; stored with the index, overridable per query."""

    dense_candidates: int = 50
    lexical_candidates: int = 50
    fusion: Fusion = Fusion.WEIGHTED
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
    # the answer scorer (crampqa/scorer.py) reads the question with each of the top
    # `scorer_candidates` fused passages and gives the probability that the passage
    # answers. Order: fused score + scorer_weight · probability. Abstention: below
    # `scorer_threshold` for (best probability among the top `confidence_depth`) + (the
    # fusion confidence above - abstain_threshold). Depth, weight and threshold were
    # chosen for the six-layer scorer on eval/dev.jsonl + eval/dev2.jsonl
    # (benchmarks/scorer_headroom.py, docs/evaluation.md): scoring 6 candidates ordered as
    # well as 12 at half the time; the threshold is the highest that abstained wrongly on
    # at most 4 % of answerable questions there. False: the fast mode, fusion alone.
    scorer: bool = True
    scorer_candidates: int = 6
    scorer_weight: float = 0.2
    scorer_threshold: float = 0.10
    # documents (BEIR sets: CrampQA.rank_documents, crampqa.documents.combine): a
    # document's best passage + these weights times its document evidence, when the
    # index has document vectors (docs/evaluation.md, "Ranking whole documents")
    # (chosen on half of MedQuAD's dev queries). The scorer's weight in a passage's score
    # is larger here than in the passage order of `ask`, which it does not change.
    document_vector_weight: float = 0.0
    document_title_weight: float = 0.5
    document_lexical_weight: float = 0.1
    document_passages_weight: float = 1.0
    document_temperature: float = 0.05
    document_scorer_weight: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "fusion", Fusion.parse(self.fusion))
        if not -1.0 <= self.abstain_threshold <= 1.0:
            raise InputError("The abstention threshold must lie between -1 and 1.")
        if not -1.0 <= self.scorer_threshold <= 2.0:
            raise InputError("The abstention threshold must lie between -1 and 2.")
        if isinstance(self.scorer_candidates, bool) or not isinstance(self.scorer_candidates,
                                                                      int) \
                or self.scorer_candidates < 1:
            raise InputError("scorer_candidates must be a whole number of at least 1.")


@dataclass(frozen=True)
class IndexSettings:
    """Everything that decides what an index contains."""

    model: str = MODEL_NAME
    chunk: ChunkSettings = field(default_factory=ChunkSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    ann: AnnKind = AnnKind.AUTO  # auto: hnsw above crampqa.dense.HNSW_THRESHOLD

    def __post_init__(self) -> None:
        object.__setattr__(self, "ann", AnnKind.parse(self.ann))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (enums as their strings)."""
        return asdict(self, dict_factory=_plain)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexSettings:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        chunk = _build(ChunkSettings, data.get("chunk", {}))
        retrieval = _build(RetrievalSettings, data.get("retrieval", {}))
        return cls(
            model=str(data.get("model", MODEL_NAME)),
            chunk=chunk,
            retrieval=retrieval,
            ann=AnnKind.parse(data.get("ann", "flat")),
        )


def _plain(items: list[tuple[str, Any]]) -> dict[str, Any]:
    return {k: v.value if isinstance(v, StrEnum) else v for k, v in items}


_T = TypeVar("_T")


def _build(kind: type[_T], data: dict[str, Any]) -> _T:
    names = {f.name for f in fields(kind)}  # type: ignore[arg-type]
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
    return bundled_corpus_dir()


def bundled_corpus_dir() -> Path:
    """The articles crampqa comes with: the checkout's ``corpus/``, else the package's copy
    (``$CRAMPQA_CORPUS`` does not change it)."""
    return PROJECT_ROOT / "corpus" if in_checkout() else PACKAGED_CORPUS


def indexes_dir() -> Path:
    """The folder that holds crampqa's indexes: ``indexes/`` in a checkout, else the user's
    cache folder (e.g. ``~/.cache/crampqa/indexes``)."""
    return PROJECT_ROOT / "indexes" if in_checkout() else cache_dir() / "indexes"


def default_index_dir() -> Path:
    """``$CRAMPQA_INDEX``, else ``default`` in :func:`indexes_dir`."""
    env = os.environ.get("CRAMPQA_INDEX")
    return Path(env) if env else bundled_index_dir()


def bundled_index_dir() -> Path:
    """The index of the bundled articles, ``default`` in :func:`indexes_dir`; it holds
    those articles only (``$CRAMPQA_INDEX`` does not change it)."""
    return indexes_dir() / "default"


def max_file_bytes() -> int:
    """The per-file size limit in bytes: ``$CRAMPQA_MAX_FILE_MB`` megabytes, or the default."""
    from crampqa.errors import InputError

    raw = os.environ.get("CRAMPQA_MAX_FILE_MB", "").strip()
    if not raw:
        return int(DEFAULT_MAX_FILE_MB * 1_000_000)
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_FILE_MB_LIMIT):
        raise InputError(f"CRAMPQA_MAX_FILE_MB must be a positive number of megabytes, at "
                         f"most {MAX_FILE_MB_LIMIT:,} (got '{raw[:40]}').")
    return max(1, int(value * 1_000_000))


#: Values of a yes/no environment variable that mean no (any other non-empty value: yes).
_FALSE_WORDS = frozenset({"", "0", "false", "no", "off", "n", "f"})


def env_flag(name: str) -> bool:
    """Whether the yes/no environment variable ``name`` is set on: ``1``, ``true``, ``yes``
    … are on; unset, empty, ``0``, ``false``, ``no`` and ``off`` are off."""
    return os.environ.get(name, "").strip().lower() not in _FALSE_WORDS
