"""crampqa.evaluation.metrics agrees with pytrec_eval (trec_eval) and handles bad input."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
import pytrec_eval
from hypothesis import given, settings
from hypothesis import strategies as st

from crampqa.errors import EvalError
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
    rank_run,
)

KS = (1, 3, 5, 10)
TOL = 1e-6


# --------------------------------------------------------------------------- reference


def reference(run: Run, qrels: Qrels, ks: tuple[int, ...] = KS) -> dict[str, dict[str, float]]:
    """The same measures computed by pytrec_eval, named as crampqa names them."""
    measures = {"map", "recip_rank"}
    for k in ks:
        measures |= {f"success_{k}", f"recall_{k}", f"P_{k}", f"ndcg_cut_{k}"}
    full = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    out: dict[str, dict[str, float]] = {}
    for qid, judged in qrels.items():
        if not any(r > 0 for r in judged.values()):
            continue  # crampqa excludes queries without relevant documents
        row = full.get(qid)
        ref: dict[str, float] = {}
        for k in ks:
            ref[f"hit@{k}"] = row[f"success_{k}"] if row else 0.0
            ref[f"recall@{k}"] = row[f"recall_{k}"] if row else 0.0
            ref[f"P@{k}"] = row[f"P_{k}"] if row else 0.0
            ref[f"nDCG@{k}"] = row[f"ndcg_cut_{k}"] if row else 0.0
            # MRR@k: trec_eval's recip_rank on the run truncated to its top k.
            top = rank_run(run.get(qid, {}))[:k]
            ref[f"MRR@{k}"] = 0.0
            if top:
                truncated = {qid: {d: run[qid][d] for d in top}}
                rr = pytrec_eval.RelevanceEvaluator({qid: judged}, {"recip_rank"})
                ref[f"MRR@{k}"] = rr.evaluate(truncated)[qid]["recip_rank"]
        ref["MAP"] = row["map"] if row else 0.0
        out[qid] = ref
    return out


def assert_matches(run: Run, qrels: Qrels, ks: tuple[int, ...] = KS) -> None:
    ours = per_query_metrics(run, qrels, ks)
    ref = reference(run, qrels, ks)
    assert set(ours) == set(ref)
    for qid in ref:
        assert set(ours[qid]) == set(ref[qid])
        for name, value in ref[qid].items():
            assert ours[qid][name] == pytest.approx(value, abs=TOL), (qid, name, run, qrels)


DOC_IDS = ["a", "b", "B", "c", "d1", "d10", "d2", "D", "z", "é", "ß", "doc_9", "10", "9"]


def random_case(rng: random.Random) -> tuple[Run, Qrels]:
    """A few queries with heavy score ties, graded qrels and some missing runs."""
    run: Run = {}
    qrels: Qrels = {}
    for q in range(rng.randint(1, 4)):
        qid = f"q{q}"
        judged = rng.sample(DOC_IDS, rng.randint(1, 8))
        qrels[qid] = {d: rng.choice([0, 0, 1, 1, 2, 3]) for d in judged}
        if rng.random() < 0.1:
            continue  # query absent from the run: must score 0
        retrieved = rng.sample(DOC_IDS, rng.randint(0, len(DOC_IDS)))
        run[qid] = {d: float(rng.choice([0.0, 0.5, 1.0, 1.5, -2.0])) for d in retrieved}
    if rng.random() < 0.2:
        run["not-judged"] = {"a": 1.0}  # ignored: not in the qrels
    return run, qrels


# --------------------------------------------------------------------------- rank_run


def test_rank_run_breaks_ties_by_docid_descending() -> None:
    assert rank_run({"a": 1.0, "b": 1.0, "c": 2.0, "B": 1.0}) == ["c", "b", "a", "B"]
    assert rank_run({"d10": 0.0, "d9": 0.0, "d2": 0.0}) == ["d9", "d2", "d10"]
    assert rank_run({}) == []


def test_rank_run_order_matches_trec_eval() -> None:
    """For each position, trec_eval's reciprocal rank of that single doc agrees."""
    rng = random.Random(7)
    for _ in range(30):
        run = {d: float(rng.choice([0.0, 1.0, 2.0])) for d in rng.sample(DOC_IDS, 10)}
        for pos, doc in enumerate(rank_run(run), start=1):
            ev = pytrec_eval.RelevanceEvaluator({"q": {doc: 1}}, {"recip_rank"})
            assert ev.evaluate({"q": run})["q"]["recip_rank"] == pytest.approx(1.0 / pos)


def test_rank_run_rejects_nan() -> None:
    with pytest.raises(EvalError, match="NaN"):
        rank_run({"a": float("nan")})


# --------------------------------------------------------------------------- agreement


def test_random_runs_match_pytrec_eval() -> None:
    rng = random.Random(20240601)
    for _ in range(300):
        run, qrels = random_case(rng)
        assert_matches(run, qrels)


@settings(max_examples=150, deadline=None)
@given(
    qrels_items=st.dictionaries(
        st.sampled_from(DOC_IDS), st.integers(min_value=-1, max_value=4), min_size=1
    ),
    run_items=st.dictionaries(
        st.sampled_from(DOC_IDS),
        st.sampled_from([0.0, 1.0, 2.5, -1.0, 1e-3]),
    ),
    ks=st.lists(st.integers(min_value=1, max_value=15), min_size=1, max_size=4, unique=True),
)
def test_hypothesis_runs_match_pytrec_eval(
    qrels_items: dict[str, int], run_items: dict[str, float], ks: list[int]
) -> None:
    assert_matches({"q": run_items}, {"q": qrels_items}, tuple(ks))


def test_no_relevant_retrieved_scores_zero() -> None:
    qrels: Qrels = {"q": {"a": 1, "b": 2, "x": 0}}
    run: Run = {"q": {"x": 3.0, "y": 2.0, "z": 1.0}}
    assert_matches(run, qrels)
    assert all(v == 0.0 for v in per_query_metrics(run, qrels)["q"].values())


def test_empty_and_missing_runs_score_zero() -> None:
    qrels: Qrels = {"empty": {"a": 1}, "missing": {"b": 2}, "ok": {"c": 1}}
    run: Run = {"empty": {}, "ok": {"c": 1.0, "d": 0.5}}
    assert_matches(run, qrels)
    rows = per_query_metrics(run, qrels)
    assert all(v == 0.0 for v in rows["empty"].values())
    assert all(v == 0.0 for v in rows["missing"].values())
    assert rows["ok"]["MAP"] == 1.0


def test_queries_without_relevant_docs_are_excluded() -> None:
    qrels: Qrels = {"none": {"a": 0}, "blank": {}, "q": {"a": 1}}
    rows = per_query_metrics({"none": {"a": 1.0}, "q": {"a": 1.0}}, qrels)
    assert set(rows) == {"q"}
    assert queries_without_relevant(qrels) == ["blank", "none"]


def test_known_values() -> None:
    qrels: Qrels = {"q": {"a": 3, "b": 1, "c": 2}}
    run: Run = {"q": {"x": 4.0, "a": 3.0, "y": 2.0, "b": 1.0}}
    row = per_query_metrics(run, qrels, ks=(1, 3))["q"]
    assert row["hit@1"] == 0.0 and row["hit@3"] == 1.0
    assert row["MRR@1"] == 0.0 and row["MRR@3"] == 0.5
    assert row["P@3"] == pytest.approx(1 / 3)
    assert row["recall@3"] == pytest.approx(1 / 3)
    assert row["MAP"] == pytest.approx((1 / 2 + 2 / 4) / 3)
    ideal = 3 + 2 / math.log2(3) + 1 / 2
    assert row["nDCG@3"] == pytest.approx((3 / math.log2(3)) / ideal)


@pytest.mark.parametrize("ks", [(), (0,), (3, -1), (1.5,), (True,)])
def test_bad_cutoffs(ks: tuple[object, ...]) -> None:
    with pytest.raises(EvalError, match="cut-off"):
        per_query_metrics({}, {"q": {"a": 1}}, ks)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- aggregate


def test_aggregate_means_and_errors() -> None:
    agg = aggregate({"a": {"MAP": 1.0, "P@1": 0.0}, "b": {"MAP": 0.5, "P@1": 1.0}})
    assert agg == {"MAP": 0.75, "P@1": 0.5}
    with pytest.raises(EvalError, match="No queries"):
        aggregate({})
    with pytest.raises(EvalError, match="same ks"):
        aggregate({"a": {"MAP": 1.0}, "b": {"P@1": 1.0}})


def test_aggregate_matches_pytrec_eval_means() -> None:
    rng = random.Random(3)
    run, qrels = random_case(rng)
    while len(per_query_metrics(run, qrels)) < 2:
        run, qrels = random_case(rng)
    agg = aggregate(per_query_metrics(run, qrels))
    ref = reference(run, qrels)
    assert agg["MAP"] == pytest.approx(np.mean([r["MAP"] for r in ref.values()]), abs=TOL)


# --------------------------------------------------------------------------- abstention


def test_abstention_metrics() -> None:
    answerable = {"a1": True, "a2": True, "a3": True, "a4": True, "u1": False, "u2": False}
    abstained = {"a1": True, "a2": False, "a3": False, "a4": False, "u1": True, "u2": False}
    m = abstention_metrics(answerable, abstained)
    assert m["correct_abstention_rate"] == 0.5
    assert m["false_abstention_rate"] == 0.25
    assert (m["n_questions"], m["n_answerable"], m["n_unanswerable"]) == (6, 4, 2)
    assert (m["n_abstained"], m["n_correct_abstentions"], m["n_false_abstentions"]) == (2, 1, 1)


def test_abstention_rates_omitted_without_denominator() -> None:
    only_answerable = abstention_metrics({"a": True}, {"a": False})
    assert "correct_abstention_rate" not in only_answerable
    assert only_answerable["false_abstention_rate"] == 0.0
    only_unanswerable = abstention_metrics({"u": False}, {"u": True})
    assert "false_abstention_rate" not in only_unanswerable
    assert only_unanswerable["correct_abstention_rate"] == 1.0


def test_abstention_errors() -> None:
    with pytest.raises(EvalError, match="No questions"):
        abstention_metrics({}, {})
    with pytest.raises(EvalError, match=r"unknown question id.*'zz'"):
        abstention_metrics({"a": True}, {"a": True, "zz": False})
    with pytest.raises(EvalError, match=r"No abstention result.*'b'"):
        abstention_metrics({"a": True, "b": False}, {"a": True})


# --------------------------------------------------------------------------- latency


def test_latency_summary() -> None:
    s = latency_summary([0.010, 0.020, 0.030, 0.040, 1.0])
    assert s["p50_ms"] == pytest.approx(30.0)
    assert s["mean_ms"] == pytest.approx(220.0)
    assert s["max_ms"] == pytest.approx(1000.0)
    assert s["p95_ms"] == pytest.approx(float(np.percentile([10, 20, 30, 40, 1000], 95)))
    with pytest.raises(EvalError, match="No latencies"):
        latency_summary([])
    with pytest.raises(EvalError, match="non-negative"):
        latency_summary([0.1, -0.2])


# --------------------------------------------------------------------------- randomisation


def brute_force_p(a: list[float], b: list[float]) -> float:
    d = np.array(a) - np.array(b)
    observed = abs(d.mean())
    flips = list(itertools.product([-1.0, 1.0], repeat=len(d)))
    return sum(abs((np.array(s) * d).mean()) >= observed - 1e-12 for s in flips) / len(flips)


def test_randomization_exact_matches_brute_force() -> None:
    rng = random.Random(11)
    for n in range(1, 9):
        a = [rng.random() for _ in range(n)]
        b = [rng.random() for _ in range(n)]
        assert paired_randomization_test(a, b) == pytest.approx(brute_force_p(a, b))


def test_randomization_monte_carlo() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(200).tolist()
    same = paired_randomization_test(a, a)
    assert same == 1.0
    better = (np.array(a) + 0.2 + rng.normal(0, 0.05, 200)).tolist()
    p = paired_randomization_test(better, a, n_resamples=2000)
    assert p == pytest.approx(1 / 2001)
    noise = (np.array(a) + rng.normal(0, 0.05, 200)).tolist()
    p1 = paired_randomization_test(noise, a, n_resamples=5000, seed=3)
    assert p1 == paired_randomization_test(noise, a, n_resamples=5000, seed=3)
    assert p1 == paired_randomization_test(a, noise, n_resamples=5000, seed=3)
    assert 0.0 < p1 <= 1.0
    # the Monte Carlo estimate agrees with the exact p-value on a small case
    x = list(rng.random(12))
    y = list(rng.random(12))
    exact = paired_randomization_test(x, y, n_resamples=4096)
    approx = paired_randomization_test(x, y, n_resamples=4095, seed=5)
    assert approx == pytest.approx(exact, abs=0.03)


def test_randomization_errors() -> None:
    with pytest.raises(EvalError, match="same queries"):
        paired_randomization_test([1.0, 2.0], [1.0])
    with pytest.raises(EvalError, match="no scores"):
        paired_randomization_test([], [])
    with pytest.raises(EvalError, match="n_resamples"):
        paired_randomization_test([1.0], [0.0], n_resamples=0)
    with pytest.raises(EvalError, match="finite"):
        paired_randomization_test([float("nan")], [0.0])


# --------------------------------------------------------------------------- coverage


def test_coverage_curve_matches_brute_force() -> None:
    rng = random.Random(5)
    for _ in range(50):
        n = rng.randint(1, 30)
        scores = [rng.choice([0.1, 0.2, 0.5, 0.7, 0.9, 1.0]) for _ in range(n)]
        correct = [rng.random() < 0.6 for _ in range(n)]
        curve = coverage_curve(scores, correct)
        assert [t for t, _, _ in curve] == sorted(set(scores))
        for t, cov, acc in curve:
            answered = [c for s, c in zip(scores, correct, strict=True) if s >= t]
            assert cov == pytest.approx(len(answered) / n)
            assert acc == pytest.approx(sum(answered) / len(answered))
    assert coverage_curve([0.3, 0.8], [False, True]) == [(0.3, 1.0, 0.5), (0.8, 0.5, 1.0)]


def test_coverage_curve_errors() -> None:
    with pytest.raises(EvalError, match="one correctness flag per score"):
        coverage_curve([0.1], [True, False])
    with pytest.raises(EvalError, match="no questions"):
        coverage_curve([], [])
    with pytest.raises(EvalError, match="finite"):
        coverage_curve([float("nan")], [True])
