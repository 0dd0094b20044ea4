"""Batch evaluation: run named retrieval configurations over a question set or BEIR split.

Two kinds of input:

* a crampqa JSONL question set (:func:`~crampqa.evaluation.datasets.load_questions`),
  evaluated at *passage* level: ``qa.ask(question, k)`` per question, and a passage
  is relevant when it contains one of the question's evidence snippets. The qrels
  list every passage of the index that contains evidence. Only answerable questions
  get retrieval metrics; abstention is scored over all questions.
* a BEIR folder (:func:`~crampqa.evaluation.datasets.load_beir`), evaluated at
  *document* level with ``qa.rank_documents`` against the graded qrels.

Run scores encode the order crampqa returned (``n, n-1, …, 1`` for ``n`` results),
not the raw passage scores: crampqa diversifies its results, so its order is not
always the raw score order, and trec_eval ranks by score. The raw scores are kept
in :attr:`ConfigResult.raw_scores`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crampqa.config import MAX_K, Progress, SearchSettings, check_k, indexes_dir
from crampqa.documents import add_hint
from crampqa.errors import EvalError, InputError
from crampqa.evaluation.datasets import (
    BeirSet,
    Question,
    beir_split,
    iter_beir_corpus,
    load_beir,
    load_questions,
    normalize_for_match,
    question_set_header,
    validate_qrels_docs,
)
from crampqa.evaluation.metrics import (
    Qrels,
    Run,
    abstention_metrics,
    aggregate,
    coverage_curve,
    latency_summary,
    paired_randomization_test,
    per_query_metrics,
    queries_without_relevant,
)

if TYPE_CHECKING:
    from crampqa.engine import CrampQA

DEFAULT_CONFIG = "default"
NAIVE_CONFIG = "naive"

CONFIGS: dict[str, dict[str, Any]] = {
    "dense": {"fusion": "dense", "rescore": False, "scorer": False},
    "bm25": {"fusion": "lexical", "rescore": False, "scorer": False},
    "hybrid": {"fusion": "weighted", "rescore": False, "scorer": False},
    "hybrid+rescore": {"fusion": "weighted", "rescore": True, "scorer": False},
    # the index's stored settings without the answer scorer: the candidates it reads
    "fast": {"scorer": False},
    DEFAULT_CONFIG: {},  # the index's stored retrieval settings, no overrides
    # the reference pipeline, document-level sets only: whole documents (title + text)
    # embedded and BM25-indexed, fused by reciprocal rank (crampqa.documents)
    NAIVE_CONFIG: {"naive": True},
}
"""Named retrieval configurations: keyword overrides for ``ask``/``rank_documents``."""

# hybrid+rescore is left out: on an index with the default settings it is "fast"
COMPARE_ORDER: tuple[str, ...] = ("dense", "bm25", "hybrid", "fast", DEFAULT_CONFIG)
"""What ``--compare`` runs; the first is the baseline of the comparison."""
BEIR_COMPARE_ORDER: tuple[str, ...] = (*COMPARE_ORDER, NAIVE_CONFIG)
"""What ``--compare`` runs on a BEIR folder: also the naive whole-document reference."""

DEFAULT_K = 10


def compared_metrics(k: int) -> tuple[str, ...]:
    """The measures compared between configurations (with a paired test)."""
    return ("hit@1", f"MRR@{k}", f"nDCG@{k}")


def metric_cutoffs(k: int) -> tuple[int, ...]:
    """Cut-offs reported for results of depth ``k``: 1, 3, 5, 10 up to k, and k."""
    return tuple(sorted({c for c in (1, 3, 5, 10) if c <= k} | {k}))


def resolve_configs(names: Sequence[str]) -> list[str]:
    """Validate configuration names (stripped, de-duplicated, order kept)."""
    out: list[str] = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        if name not in CONFIGS:
            raise EvalError(f"Unknown configuration '{name}' (choose {', '.join(CONFIGS)}).")
        if name not in out:
            out.append(name)
    if not out:
        raise EvalError(f"No configuration given (choose from {', '.join(CONFIGS)}).")
    return out


# --------------------------------------------------------------------------- results


@dataclass
class QueryRecord:
    """What happened to one question under one configuration."""

    qid: str
    question: str
    expected: list[str]  # evidence snippets, or relevant document ids (BEIR)
    answerable: bool | None  # None for BEIR queries
    n_relevant: int
    first_relevant_rank: int | None
    first_id: str | None  # source id (passage) or document id (BEIR) shown first
    first_text: str | None  # the first passage, verbatim (None for BEIR)
    first_chars: int | None
    abstained: bool | None  # None for BEIR
    confidence: float | None  # None for BEIR
    latency_ms: float


@dataclass
class ConfigResult:
    """Everything measured for one configuration."""

    name: str
    overrides: dict[str, Any]
    metrics: dict[str, float]  # mean over queries with relevant results
    per_query: dict[str, dict[str, float]]
    abstention: dict[str, float | int] | None  # None for BEIR
    latency: dict[str, float]
    run: Run  # order-encoding scores: what is evaluated and written as TREC
    raw_scores: Run  # crampqa's own passage/document scores
    records: list[QueryRecord]
    curves: dict[str, list[float]]  # "hit" and "recall" at k = 1..K
    coverage: list[tuple[float, float, float]]  # (threshold, coverage, accuracy)
    mean_first_chars: float | None
    #: the confidence below which this configuration abstains (question sets): the
    #: scorer's threshold with the answer scorer, fusion's without it
    abstain_threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        data = asdict(self)
        data["coverage"] = [list(row) for row in self.coverage]
        return data


@dataclass
class Comparison:
    """One configuration against the baseline (the first configuration)."""

    baseline: str
    config: str
    mean_diff: dict[str, float]  # mean of config - baseline, per measure
    p_values: dict[str, float]  # paired randomisation test, two-sided
    per_query_diff: dict[str, dict[str, float]]  # qid -> measure -> config - baseline

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


@dataclass
class EvalResult:
    """A whole evaluation: one result per configuration plus the comparisons."""

    source: str
    kind: str  # "questions" or "beir"
    k: int
    index: str
    split: str | None
    n_queries: int
    qrels: Qrels
    without_relevant: list[str]  # evaluated queries with no relevant passage/document
    configs: list[ConfigResult]
    comparisons: list[Comparison] = field(default_factory=list)
    #: the question set declares it was used for tuning: its figures are in-sample
    in_sample: bool = False

    @property
    def baseline(self) -> str:
        """The configuration every other one is compared with."""
        return self.configs[0].name

    def config(self, name: str) -> ConfigResult:
        """The result of configuration ``name``."""
        for c in self.configs:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``--json`` and ``results.json``)."""
        return {
            "source": self.source,
            "kind": self.kind,
            "k": self.k,
            "index": self.index,
            "split": self.split,
            "n_queries": self.n_queries,
            "in_sample": self.in_sample,
            "baseline": self.baseline,
            "without_relevant": self.without_relevant,
            "configs": {c.name: c.to_dict() for c in self.configs},
            "comparisons": [c.to_dict() for c in self.comparisons],
            "qrels": self.qrels,
        }


# --------------------------------------------------------------------------- helpers


def _order_run(ids: Sequence[str]) -> dict[str, float]:
    """Scores n, n-1, …, 1 so that trec_eval's order is exactly ``ids``' order."""
    n = len(ids)
    return {doc_id: float(n - i) for i, doc_id in enumerate(ids)}


def _first_relevant(ids: Sequence[str], judged: dict[str, int]) -> int | None:
    """1-based rank of the first relevant id, or None."""
    return next((i for i, d in enumerate(ids, start=1) if judged.get(d, 0) > 0), None)


def _check_k(k: int, limit_k: int | None = MAX_K) -> int:
    try:
        return check_k(k, limit_k)
    except InputError as exc:
        raise EvalError(exc.message) from None


def _check_limit(limit: int | None) -> int | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise EvalError(f"--limit must be a positive whole number (got {limit!r}).")
    return limit


def check_texts(items: Sequence[tuple[str, str]], what: str, where: str) -> None:
    """Raise EvalError naming the first question crampqa would refuse (blank, too long)."""
    from crampqa.engine import clean_question

    for qid, text in items:
        try:
            clean_question(text)
        except InputError as exc:
            raise EvalError(f"{what} {qid!r} in {where}: {exc.message}") from None


def _curves(run: Run, qrels: Qrels, k: int) -> dict[str, list[float]]:
    """Mean hit@j and recall@j for j = 1..k (empty when nothing has relevant results)."""
    per_query = per_query_metrics(run, qrels, ks=tuple(range(1, k + 1)))
    if not per_query:
        return {"hit": [], "recall": []}
    means = aggregate(per_query)
    return {
        "hit": [means[f"hit@{j}"] for j in range(1, k + 1)],
        "recall": [means[f"recall@{j}"] for j in range(1, k + 1)],
    }


def _compare(configs: list[ConfigResult], k: int) -> list[Comparison]:
    """Each configuration after the first against the first, per query and in the mean."""
    if len(configs) < 2 or not configs[0].per_query:
        return []
    base = configs[0]
    qids = sorted(base.per_query)
    out: list[Comparison] = []
    for other in configs[1:]:
        diffs: dict[str, dict[str, float]] = {q: {} for q in qids}
        mean_diff: dict[str, float] = {}
        p_values: dict[str, float] = {}
        for measure in compared_metrics(k):
            a = [other.per_query[q][measure] for q in qids]
            b = [base.per_query[q][measure] for q in qids]
            for q, x, y in zip(qids, a, b, strict=True):
                diffs[q][measure] = x - y
            mean_diff[measure] = math.fsum(a) / len(a) - math.fsum(b) / len(b)
            p_values[measure] = paired_randomization_test(a, b)
        out.append(Comparison(base.name, other.name, mean_diff, p_values, diffs))
    return out


def _tick(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


# --------------------------------------------------------------------------- question sets


def question_qrels(qa: CrampQA, questions: Sequence[Question]) -> Qrels:
    """qid -> {source id: 1} for every indexed passage that contains the evidence.

    Only answerable questions get an entry (possibly empty when no single passage
    contains any of its snippets). Matching is
    :func:`~crampqa.evaluation.datasets.contains_evidence`'s, with the passages
    normalised once.
    """
    table = qa.data.passages
    ids = [table.source_id(row) for row in range(len(table))]
    texts = [normalize_for_match(table.text(row)) for row in range(len(table))]
    qrels: Qrels = {}
    for q in questions:
        if not q.answerable:
            continue
        needles = [n for n in (normalize_for_match(s) for s in q.evidence) if n]
        qrels[q.id] = {
            sid: 1 for sid, text in zip(ids, texts, strict=True)
            if any(n in text for n in needles)
        }
    return qrels


def run_questions_config(
    qa: CrampQA,
    questions: Sequence[Question],
    qrels: Qrels,
    name: str,
    k: int = DEFAULT_K,
    progress: Progress | None = None,
) -> ConfigResult:
    """Ask every question under configuration ``name`` and score the answers."""
    overrides = CONFIGS[name]
    run: Run = {}
    raw: Run = {}
    records: list[QueryRecord] = []
    latencies: list[float] = []
    stage = f"eval {name}"
    _tick(progress, stage, 0, len(questions))
    for i, q in enumerate(questions, start=1):
        start = time.perf_counter()
        answer = qa.ask(q.question, k=k, **overrides)
        seconds = time.perf_counter() - start
        latencies.append(seconds)
        ids = [p.source_id for p in answer.passages]
        run[q.id] = _order_run(ids)
        raw[q.id] = {p.source_id: float(p.score) for p in answer.passages}
        judged = qrels.get(q.id, {})
        first = answer.passages[0] if answer.passages else None
        records.append(QueryRecord(
            qid=q.id,
            question=q.question,
            expected=list(q.evidence),
            answerable=q.answerable,
            n_relevant=sum(1 for r in judged.values() if r > 0),
            first_relevant_rank=_first_relevant(ids, judged),
            first_id=first.source_id if first else None,
            first_text=first.text if first else None,
            first_chars=len(first.text) if first else None,
            abstained=answer.abstained,
            confidence=float(answer.confidence),
            latency_ms=seconds * 1000.0,
        ))
        _tick(progress, stage, i, len(questions))

    per_query = per_query_metrics(run, qrels, metric_cutoffs(k))
    metrics = aggregate(per_query) if per_query else {}
    abstention = abstention_metrics(
        {q.id: q.answerable for q in questions}, {r.qid: bool(r.abstained) for r in records}
    )
    hit1 = {qid: row["hit@1"] > 0 for qid, row in per_query.items()}
    coverage = coverage_curve(
        [float(r.confidence or 0.0) for r in records],
        [bool(r.answerable) and hit1.get(r.qid, False) for r in records],
    )
    lengths = [r.first_chars for r in records if r.first_chars is not None]
    return ConfigResult(
        name=name,
        overrides=dict(overrides),
        metrics=metrics,
        per_query=per_query,
        abstention=abstention,
        latency=latency_summary(latencies),
        run=run,
        raw_scores=raw,
        records=records,
        curves=_curves(run, qrels, k),
        coverage=coverage,
        mean_first_chars=math.fsum(lengths) / len(lengths) if lengths else None,
        abstain_threshold=qa.abstain_threshold(**overrides),
    )


def evaluate_questions(
    qa: CrampQA,
    questions: Sequence[Question],
    configs: Sequence[str] = (DEFAULT_CONFIG,),
    k: int = DEFAULT_K,
    progress: Progress | None = None,
    source: str = "",
) -> EvalResult:
    """Evaluate a crampqa question set under each configuration (the first is the baseline)."""
    names = resolve_configs(configs)
    if NAIVE_CONFIG in names:
        raise EvalError(f"Configuration '{NAIVE_CONFIG}' ranks whole documents; it applies "
                        "to BEIR folders only.")
    k = _check_k(k)
    if not questions:
        raise EvalError("The question set is empty; add at least one question.")
    qrels = question_qrels(qa, questions)
    qa.ask(questions[0].question, k=k)  # warm-up, so the first timing is not an outlier
    results = [run_questions_config(qa, questions, qrels, n, k, progress) for n in names]
    return EvalResult(
        source=source,
        kind="questions",
        k=k,
        index=str(qa.index_dir),
        split=None,
        n_queries=len(questions),
        qrels=qrels,
        without_relevant=queries_without_relevant(qrels),
        configs=results,
        comparisons=_compare(results, k),
    )


# --------------------------------------------------------------------------- BEIR


def run_beir_config(
    qa: CrampQA,
    beir: BeirSet,
    name: str,
    k: int = DEFAULT_K,
    progress: Progress | None = None,
) -> ConfigResult:
    """Rank documents for every query of ``beir`` under configuration ``name``."""
    overrides = CONFIGS[name]
    run: Run = {}
    raw: Run = {}
    records: list[QueryRecord] = []
    latencies: list[float] = []
    stage = f"eval {name}"
    total = len(beir.queries)
    _tick(progress, stage, 0, total)
    for i, (qid, text) in enumerate(beir.queries.items(), start=1):
        start = time.perf_counter()
        ranked = qa.rank_documents(text, k, **overrides)
        seconds = time.perf_counter() - start
        latencies.append(seconds)
        ids = [doc_id for doc_id, _ in ranked]
        run[qid] = _order_run(ids)
        raw[qid] = {doc_id: float(score) for doc_id, score in ranked}
        judged = beir.qrels.get(qid, {})
        relevant = sorted(d for d, r in judged.items() if r > 0)
        records.append(QueryRecord(
            qid=qid,
            question=text,
            expected=relevant,
            answerable=None,
            n_relevant=len(relevant),
            first_relevant_rank=_first_relevant(ids, judged),
            first_id=ids[0] if ids else None,
            first_text=None,
            first_chars=None,
            abstained=None,
            confidence=None,
            latency_ms=seconds * 1000.0,
        ))
        _tick(progress, stage, i, total)
    per_query = per_query_metrics(run, beir.qrels, metric_cutoffs(k))
    return ConfigResult(
        name=name,
        overrides=dict(overrides),
        metrics=aggregate(per_query),
        per_query=per_query,
        abstention=None,
        latency=latency_summary(latencies),
        run=run,
        raw_scores=raw,
        records=records,
        curves=_curves(run, beir.qrels, k),
        coverage=[],
        mean_first_chars=None,
    )


def prepare_beir(folder: Path, split: str = "dev", limit: int | None = None) -> BeirSet:
    """Load a BEIR split, check its qrels against the corpus, keep the first ``limit`` queries.

    Everything is checked before any index work, so a bad folder fails fast.
    """
    beir = load_beir(Path(folder), split)
    validate_qrels_docs(beir, {doc_id for doc_id, _, _ in iter_beir_corpus(beir.corpus_path)})
    limit = _check_limit(limit)
    queries = dict(list(beir.queries.items())[:limit]) if limit else beir.queries
    qrels = {qid: beir.qrels[qid] for qid in queries}
    check_texts(list(queries.items()), "BEIR query", str(folder))
    if len(queries_without_relevant(qrels)) == len(qrels):
        raise EvalError(
            f"No evaluated query of split '{split}' in {folder} has a relevant document "
            "(relevance > 0); check the qrels."
        )
    return BeirSet(corpus_path=beir.corpus_path, queries=queries, qrels=qrels)


def evaluate_beir(
    qa: CrampQA,
    beir: BeirSet,
    configs: Sequence[str] = (DEFAULT_CONFIG,),
    k: int = DEFAULT_K,
    progress: Progress | None = None,
    source: str = "",
    split: str | None = None,
) -> EvalResult:
    """Evaluate document ranking on a (prepared) BEIR split under each configuration."""
    names = resolve_configs(configs)
    k = _check_k(k, limit_k=None)
    if not beir.queries:
        raise EvalError("The BEIR split has no queries to evaluate.")
    if NAIVE_CONFIG in names and qa.document_level is None:
        raise EvalError(f"Configuration '{NAIVE_CONFIG}' needs document vectors, which the "
                        f"index in {qa.index_dir} lacks; {add_hint(qa.index_dir)}.")
    qa.rank_documents(next(iter(beir.queries.values())), k)  # warm-up
    results = [run_beir_config(qa, beir, n, k, progress) for n in names]
    return EvalResult(
        source=source,
        kind="beir",
        k=k,
        index=str(qa.index_dir),
        split=split,
        n_queries=len(beir.queries),
        qrels=beir.qrels,
        without_relevant=queries_without_relevant(beir.qrels),
        configs=results,
        comparisons=_compare(results, k),
    )


# --------------------------------------------------------------------------- entry point


def beir_index_dir(folder: Path) -> Path:
    """Default index folder for a BEIR folder: ``indexes/beir-<folder name>``."""
    return indexes_dir() / f"beir-{Path(folder).resolve().name}"


def open_index(
    corpus: Path | None, index: Path | None, progress: Progress | None = None,
    search: SearchSettings | None = None,
) -> CrampQA:
    """Open (building if needed) the index that is evaluated."""
    from crampqa.engine import CrampQA

    return CrampQA.open(corpus, index, progress=progress, search=search)


def evaluate_path(
    target: Path,
    configs: Sequence[str] = (DEFAULT_CONFIG,),
    *,
    k: int = DEFAULT_K,
    split: str | None = None,
    limit: int | None = None,
    corpus: Path | None = None,
    index: Path | None = None,
    progress: Progress | None = None,
    on_open: Callable[[CrampQA], None] | None = None,
    search: SearchSettings | None = None,
    compare: bool = False,
) -> EvalResult:
    """Evaluate a question-set file or a BEIR folder, as ``crampqa eval`` does.

    A question set runs against ``corpus``/``index`` (the defaults when None). A
    BEIR folder is its own corpus, indexed into ``index`` or
    ``indexes/beir-<folder name>``. ``split`` None takes the folder's only qrels split (or
    ``dev``). ``limit`` keeps the first N questions/queries.
    ``on_open`` is called with the opened engine (to report an index build).
    ``search`` chooses where candidates are searched (default: as the index records).
    ``compare`` runs :data:`COMPARE_ORDER` (:data:`BEIR_COMPARE_ORDER` for a BEIR folder)
    instead of ``configs``.
    """
    target = Path(target)
    if compare:
        configs = BEIR_COMPARE_ORDER if target.is_dir() else COMPARE_ORDER
    names = resolve_configs(configs)
    limit = _check_limit(limit)

    def _opened(corpus_dir: Path | None, index_dir: Path | None) -> CrampQA:
        if search is None:
            return open_index(corpus_dir, index_dir, progress)
        return open_index(corpus_dir, index_dir, progress, search=search)

    if target.is_dir():
        if corpus is not None:
            raise EvalError("--corpus does not apply to a BEIR folder (it is its own corpus).")
        _check_k(k, limit_k=None)
        split = beir_split(target, split)
        beir = prepare_beir(target, split, limit)
        qa = _opened(target, index or beir_index_dir(target))
        if on_open is not None:
            on_open(qa)
        return evaluate_beir(qa, beir, names, k, progress, str(target), split)
    if not target.exists():
        raise EvalError(
            f"{target} not found; pass a crampqa JSONL question set or a BEIR folder."
        )
    _check_k(k)
    questions = load_questions(target)
    if limit:
        questions = questions[:limit]
    check_texts([(q.id, q.question) for q in questions], "Question", str(target))
    qa = _opened(corpus, index)
    if on_open is not None:
        on_open(qa)
    result = evaluate_questions(qa, questions, names, k, progress, str(target))
    result.in_sample = question_set_header(target).get("tuning") is True
    return result
