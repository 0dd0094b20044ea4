"""Retrieval and answering metrics, as pure functions.

The ranking metrics reproduce ``trec_eval`` (and so ``pytrec_eval``) exactly:

* Ranking (:func:`rank_run`): score descending; ties are broken by document id
  *descending* (``strcmp`` byte order on UTF-8, which is Python's code-point
  order). So with equal scores ``"b"`` ranks above ``"a"``. This was verified
  empirically against ``pytrec_eval`` and is pinned by the tests.
* A document is relevant when its qrels relevance is > 0. Graded gain for nDCG
  is the relevance itself (negative relevance counts as 0), discount
  ``log2(rank + 1)``, and the ideal ranking is built from the qrels.
* Queries in the qrels that the run does not mention score 0 on every measure
  (``trec_eval -c``; ``pytrec_eval`` would silently drop them).
* Queries with no relevant document in the qrels are *excluded* from
  :func:`per_query_metrics` (every measure is 0 or undefined for them);
  callers that want to report them can count them with
  :func:`queries_without_relevant`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from crampqa.errors import EvalError

Run = dict[str, dict[str, float]]
"""qid -> docid -> retrieval score (higher is better)."""

Qrels = dict[str, dict[str, int]]
"""qid -> docid -> graded relevance (> 0 is relevant)."""

DEFAULT_KS: tuple[int, ...] = (1, 3, 5, 10)

# Monte Carlo sign flips are drawn in blocks of at most this many cells.
_BLOCK_CELLS = 2_000_000


def rank_run(run_for_query: Mapping[str, float]) -> list[str]:
    """Doc ids in trec_eval order: score descending, ties by doc id descending."""
    for docid, score in run_for_query.items():
        if math.isnan(score):
            raise EvalError(
                f"Run score for document {docid!r} is NaN; give every retrieved "
                "document a real-valued score."
            )
    items = sorted(run_for_query.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
    return [docid for docid, _ in items]


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """Validate cut-offs: a non-empty sequence of positive ints, deduplicated."""
    if len(ks) == 0:
        raise EvalError("No cut-offs given for the metrics; pass ks such as (1, 3, 5, 10).")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise EvalError(f"Metric cut-off {k!r} is not a positive integer; use ks like (1, 5).")
    return tuple(dict.fromkeys(ks))


def queries_without_relevant(qrels: Qrels) -> list[str]:
    """Query ids in the qrels with no relevant (> 0) document, sorted."""
    return sorted(q for q, judged in qrels.items() if not any(r > 0 for r in judged.values()))


def _dcg(gains: Sequence[float]) -> float:
    """Discounted cumulative gain with trec_eval's log2(rank + 1) discount."""
    return math.fsum(g / math.log2(i + 2) for i, g in enumerate(gains) if g != 0)


def _query_metrics(
    ranking: Sequence[str], judged: Mapping[str, int], ks: tuple[int, ...]
) -> dict[str, float]:
    """All measures for one query with at least one relevant document."""
    rels = [judged.get(docid, 0) for docid in ranking]
    is_rel = [r > 0 for r in rels]
    num_rel = sum(1 for r in judged.values() if r > 0)
    ideal_gains = sorted((r for r in judged.values() if r > 0), reverse=True)
    first_rel = next((i + 1 for i, hit in enumerate(is_rel) if hit), None)

    out: dict[str, float] = {}
    for k in ks:
        rel_at_k = sum(is_rel[:k])
        out[f"hit@{k}"] = 1.0 if rel_at_k > 0 else 0.0
        out[f"recall@{k}"] = rel_at_k / num_rel
        out[f"P@{k}"] = rel_at_k / k
        out[f"MRR@{k}"] = 1.0 / first_rel if first_rel is not None and first_rel <= k else 0.0
        ideal = _dcg(ideal_gains[:k])
        out[f"nDCG@{k}"] = _dcg([max(r, 0) for r in rels[:k]]) / ideal

    found = 0
    precision_sum = 0.0
    for i, hit in enumerate(is_rel, start=1):
        if hit:
            found += 1
            precision_sum += found / i
    out["MAP"] = precision_sum / num_rel
    return out


def per_query_metrics(
    run: Run, qrels: Qrels, ks: Sequence[int] = DEFAULT_KS
) -> dict[str, dict[str, float]]:
    """Per-query hit@k, recall@k, P@k, MRR@k, nDCG@k and MAP, matching trec_eval.

    Every query in ``qrels`` with at least one relevant document gets a row;
    queries missing from ``run`` score 0. Queries without relevant documents
    are left out (see :func:`queries_without_relevant`). Run entries for
    queries absent from the qrels are ignored.
    """
    cutoffs = _check_ks(ks)
    out: dict[str, dict[str, float]] = {}
    for qid, judged in qrels.items():
        if not any(r > 0 for r in judged.values()):
            continue
        ranking = rank_run(run.get(qid, {}))
        out[qid] = _query_metrics(ranking, judged, cutoffs)
    return out


def aggregate(per_query: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Mean of each measure over queries; every query must have the same measures."""
    if not per_query:
        raise EvalError(
            "No queries to aggregate; check that the qrels contain relevant documents "
            "for the evaluated queries."
        )
    rows = list(per_query.items())
    names = list(rows[0][1])
    for qid, row in rows:
        if set(row) != set(names):
            raise EvalError(
                f"Query {qid!r} has measures {sorted(row)} but query {rows[0][0]!r} has "
                f"{sorted(names)}; compute all queries with the same ks."
            )
    n = len(rows)
    return {name: math.fsum(row[name] for _, row in rows) / n for name in names}


def abstention_metrics(
    answerable: Mapping[str, bool], abstained: Mapping[str, bool]
) -> dict[str, float | int]:
    """How well the system abstains, for questions keyed by id.

    Returns the counts ``n_questions``, ``n_answerable``, ``n_unanswerable``,
    ``n_abstained``, ``n_correct_abstentions`` (unanswerable and abstained),
    ``n_false_abstentions`` (answerable but abstained), and the rates
    ``correct_abstention_rate`` (share of unanswerable questions abstained on)
    and ``false_abstention_rate`` (share of answerable questions abstained on).
    A rate whose denominator is zero is *omitted* rather than NaN/None.
    """
    if not answerable:
        raise EvalError("No questions given to abstention_metrics; evaluate at least one question.")
    unknown = sorted(set(abstained) - set(answerable))
    missing = sorted(set(answerable) - set(abstained))
    if unknown:
        raise EvalError(
            f"Abstention results for {len(unknown)} unknown question id(s) "
            f"(e.g. {', '.join(map(repr, unknown[:5]))}); only report ids from the question set."
        )
    if missing:
        raise EvalError(
            f"No abstention result for {len(missing)} question id(s) "
            f"(e.g. {', '.join(map(repr, missing[:5]))}); run every question before scoring."
        )
    n_answerable = sum(1 for v in answerable.values() if v)
    n_unanswerable = len(answerable) - n_answerable
    n_correct = sum(1 for q, v in answerable.items() if not v and abstained[q])
    n_false = sum(1 for q, v in answerable.items() if v and abstained[q])
    out: dict[str, float | int] = {
        "n_questions": len(answerable),
        "n_answerable": n_answerable,
        "n_unanswerable": n_unanswerable,
        "n_abstained": sum(1 for v in abstained.values() if v),
        "n_correct_abstentions": n_correct,
        "n_false_abstentions": n_false,
    }
    if n_unanswerable:
        out["correct_abstention_rate"] = n_correct / n_unanswerable
    if n_answerable:
        out["false_abstention_rate"] = n_false / n_answerable
    return out


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """``p50_ms``, ``p95_ms``, ``mean_ms`` and ``max_ms`` of latencies given in seconds.

    Percentiles use numpy's default linear interpolation.
    """
    values = np.asarray(seconds, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise EvalError("No latencies to summarise; time at least one query.")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise EvalError("Latencies must be finite, non-negative numbers of seconds.")
    ms = values * 1000.0
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "mean_ms": float(ms.mean()),
        "max_ms": float(ms.max()),
    }


def _paired_differences(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """``a - b`` as a float array, after checking lengths and values."""
    if len(a) != len(b):
        raise EvalError(
            f"Paired test needs one score per query for both systems, got {len(a)} and "
            f"{len(b)}; evaluate both systems on the same queries."
        )
    if len(a) == 0:
        raise EvalError("Paired test got no scores; evaluate at least one query.")
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if not np.all(np.isfinite(diff)):
        raise EvalError("Paired test scores must be finite numbers (no NaN or infinity).")
    return diff


def paired_randomization_test(
    a: Sequence[float], b: Sequence[float], n_resamples: int = 10000, seed: int = 0
) -> float:
    """Two-sided paired sign-flip randomisation test on the mean of ``a - b``.

    Under the null hypothesis each per-query difference is equally likely to
    have either sign. When ``2**n <= n_resamples`` all sign patterns are
    enumerated and the exact p-value is returned. Otherwise ``n_resamples``
    random sign patterns are drawn (seeded, so the result is reproducible) and
    the add-one estimate ``(extreme + 1) / (n_resamples + 1)`` is returned,
    which is never 0. Identical systems give 1.0.
    """
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise EvalError(f"n_resamples must be a positive integer, got {n_resamples!r}.")
    diff = _paired_differences(a, b)
    n = diff.size
    observed = abs(float(diff.sum()))
    # Sums of the same numbers in another order can differ by rounding; allow for it.
    tol = 1e-9 * max(float(np.abs(diff).sum()), 1e-300)

    if n < 63 and 2**n <= n_resamples:
        patterns = np.arange(2**n, dtype=np.int64)[:, None] >> np.arange(n, dtype=np.int64)
        signs = (patterns & 1).astype(np.float64) * 2.0 - 1.0
        extreme = int(np.count_nonzero(np.abs(signs @ diff) >= observed - tol))
        return float(extreme / 2**n)

    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_CELLS // n)
    extreme = 0
    remaining = n_resamples
    while remaining > 0:
        m = min(block, remaining)
        signs = rng.integers(0, 2, size=(m, n), dtype=np.int8).astype(np.float64) * 2.0 - 1.0
        extreme += int(np.count_nonzero(np.abs(signs @ diff) >= observed - tol))
        remaining -= m
    return (extreme + 1) / (n_resamples + 1)


def coverage_curve(
    scores: Sequence[float], correct: Sequence[bool]
) -> list[tuple[float, float, float]]:
    """Coverage/accuracy trade-off for an abstention threshold sweep.

    A question is answered when its confidence ``score >= threshold``. For
    each threshold in the sorted (ascending) unique scores, returns
    ``(threshold, coverage, accuracy)``: coverage is the share of questions
    answered and accuracy the share of answered questions that are correct.
    Every threshold answers at least one question, so accuracy is defined.
    """
    if len(scores) != len(correct):
        raise EvalError(
            f"coverage_curve needs one correctness flag per score, got {len(scores)} scores "
            f"and {len(correct)} flags."
        )
    if len(scores) == 0:
        raise EvalError("coverage_curve got no questions; evaluate at least one question.")
    s = np.asarray(scores, dtype=np.float64)
    if not np.all(np.isfinite(s)):
        raise EvalError("coverage_curve scores must be finite numbers (no NaN or infinity).")
    c = np.asarray(correct, dtype=bool)
    order = np.argsort(s, kind="stable")
    s_sorted = s[order]
    c_sorted = c[order].astype(np.int64)
    n = s.size
    thresholds, first = np.unique(s_sorted, return_index=True)
    # correct_from[i] = number of correct answers among sorted positions i..n-1
    correct_from = np.concatenate([np.cumsum(c_sorted[::-1])[::-1], [0]])
    answered = n - first
    return [
        (float(t), float(k / n), float(correct_from[i] / k))
        for t, i, k in zip(thresholds, first, answered, strict=True)
    ]
