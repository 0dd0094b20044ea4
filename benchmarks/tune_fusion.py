"""Grid search of the weighted-fusion weights on a crampqa question set, with an honest
leave-one-question-out estimate.

Run from the repository root (about a minute)::

    .venv/bin/python benchmarks/tune_fusion.py                      # eval/questions.jsonl
    .venv/bin/python benchmarks/tune_fusion.py --questions FILE --top 20
    .venv/bin/python benchmarks/tune_fusion.py --beir ../shared/datasets/medquad \
        --beir-index indexes/bench-medquad          # joint: our questions + MedQuAD (~3 min)

For every answerable question it ranks all candidate passages once (the retriever's own
features: passage similarity of the question and of the synonym-expanded question, BM25
normalised by the best BM25, best sentence, mean of the two best sentences, best sentence
for the expanded question; table rows use their passage similarity as their "sentence"),
then scores every weight combination of the grid by hit@1 and hit@3 (top-1/top-3 without
diversification, so figures can differ slightly from ``crampqa eval``). It prints the
combinations that meet the targets (hit@1 >= 0.90 and hit@3 >= 0.98) and the
leave-one-question-out estimate: for each question, the weights that are best on the
other questions are applied to it. The gap between the in-sample and the held-out figure
is the optimism of tuning on the evaluation set; docs/evaluation.md reports both.

With ``--beir`` (a BEIR folder and an index of it, e.g. MedQuAD after
``benchmarks/bench_medquad.py``), every combination with hit@1 >= ``--min-hit1`` on the
question set is also scored by document-level nDCG@10 on the BEIR queries (documents
ranked by their best candidate passage, as ``crampqa eval`` does; the candidates are the
100 dense + 100 BM25 passages), and the best of them by nDCG@10 are listed: weights that
hold on a second, independent set are less tuned to our 76 questions.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from crampqa.engine import CrampQA
from crampqa.evaluation.datasets import load_questions, normalize_for_match
from crampqa.retrieval import with_overrides

FEATURES = ("dense", "lexical_norm", "sentence", "top2", "dense_expanded", "sentence_expanded")
WEIGHT_NAMES = ("dense_weight", "lexical_weight", "sentence_weight", "top2_weight",
                "expanded_dense_weight", "expanded_sentence_weight")
GRID = (
    np.round(np.arange(0, 1.01, 0.1), 2),
    (0.1, 0.2, 0.3),
    np.round(np.arange(0, 1.01, 0.1), 2),
    np.round(np.arange(0, 1.01, 0.1), 2),
    (0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
    (0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
)


def features(qa: CrampQA, questions: Path) -> tuple[np.ndarray, np.ndarray]:
    """(questions, passages, features) and (questions, passages) relevance arrays."""
    table = qa.data.passages
    n = len(table)
    texts = [normalize_for_match(table.text(r)) for r in range(n)]
    settings = with_overrides(qa.retrieval_settings, dense_candidates=n, lexical_candidates=n)
    xs, ys = [], []
    for q in load_questions(questions):
        if not q.answerable:
            continue
        needles = [e for e in (normalize_for_match(s) for s in q.evidence) if e]
        x = np.full((n, len(FEATURES)), -1.0)
        y = np.array([any(e in t for e in needles) for t in texts], dtype=bool)
        for cand in qa.retriever.rank(q.question, n, settings, diversify=False).candidates:
            x[cand.row] = [getattr(cand, f) for f in FEATURES]
        xs.append(x)
        ys.append(y)
    return np.stack(xs), np.stack(ys)


def beir_ndcg(weights: np.ndarray, beir: Path, index: Path) -> np.ndarray:
    """Document-level nDCG@10 (binary relevance) of each weight row on a BEIR split."""
    from crampqa.evaluation.runner import prepare_beir

    qa = CrampQA.open(beir, index, auto_build=False)
    split = prepare_beir(beir, "dev", None)
    settings = with_overrides(qa.retrieval_settings, dense_candidates=100,
                              lexical_candidates=100)
    total = np.zeros(len(weights))
    counted = 0
    for qid, text in split.queries.items():
        relevant = {d for d, r in split.qrels.get(qid, {}).items() if r > 0}
        if not relevant:
            continue
        counted += 1
        cands = qa.retriever.rank(text, 400, settings, diversify=False).candidates
        x = np.array([[getattr(c, f) for f in FEATURES] for c in cands])
        docs = qa.data.passages.docs[[c.row for c in cands]]
        order = np.argsort(docs, kind="stable")
        x, docs = x[order], docs[order]
        starts = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
        doc_scores = np.maximum.reduceat(weights @ x.T, starts, axis=1)  # best passage
        is_rel = np.array([qa.data.documents[d].doc_id in relevant for d in docs[starts]])
        ideal = sum(1 / np.log2(i + 2) for i in range(min(len(relevant), 10)))
        for j in np.flatnonzero(is_rel):
            rank = (doc_scores > doc_scores[:, [j]]).sum(axis=1)
            total += np.where(rank < 10, 1 / np.log2(rank + 2), 0.0) / ideal
    return total / max(1, counted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=Path, default=Path("eval/questions.jsonl"))
    parser.add_argument("--top", type=int, default=10, help="Combinations to print.")
    parser.add_argument("--beir", type=Path, help="BEIR folder for joint tuning.")
    parser.add_argument("--beir-index", type=Path, help="Index of that BEIR corpus.")
    parser.add_argument("--min-hit1", type=float, default=0.90)
    parser.add_argument("--min-ndcg", type=float, default=0.727,
                        help="BEIR nDCG@10 to reach (default: 1.1 x BM25's 0.661 on MedQuAD).")
    args = parser.parse_args()
    qa = CrampQA.open()
    x, y = features(qa, args.questions)
    weights = np.array(list(itertools.product(*GRID)))
    hit1 = np.zeros((len(weights), x.shape[0]))
    hit3 = np.zeros((len(weights), x.shape[0]))
    for begin in range(0, len(weights), 4096):  # bounded memory
        w = weights[begin : begin + 4096]
        scores = np.einsum("qnf,wf->wqn", x, w)
        top = np.argsort(-scores, axis=2, kind="stable")[:, :, :3]
        rel = np.take_along_axis(np.broadcast_to(y, (len(w), *y.shape)), top, 2)
        hit1[begin : begin + len(w)] = rel[:, :, 0]
        hit3[begin : begin + len(w)] = rel.any(axis=2)
    h1, h3 = hit1.mean(1), hit3.mean(1)
    current = np.array([getattr(qa.retrieval_settings, n) for n in WEIGHT_NAMES])
    match = np.flatnonzero(np.all(np.isclose(weights, current), axis=1))
    print(f"{x.shape[0]} answerable questions, {len(weights)} weight combinations")
    if match.size:
        i = int(match[0])
        print(f"index settings {dict(zip(WEIGHT_NAMES, current, strict=True))}: "
              f"hit@1 {h1[i]:.3f}, hit@3 {h3[i]:.3f} (in-sample)")
    ok = np.flatnonzero((h1 >= 0.90) & (h3 >= 0.98))
    print(f"{ok.size} combinations meet hit@1 >= 0.90 and hit@3 >= 0.98 in-sample")
    for i in ok[np.argsort(-(h1[ok] + h3[ok]), kind="stable")][: args.top]:
        print("  " + ", ".join(f"{n}={v:g}" for n, v in zip(WEIGHT_NAMES, weights[i],
                                                             strict=True))
              + f": hit@1 {h1[i]:.3f}, hit@3 {h3[i]:.3f}")
    t1, t3 = hit1.sum(1), hit3.sum(1)
    held1 = held3 = 0.0
    for q in range(x.shape[0]):
        objective = (t1 - hit1[:, q]) + (t3 - hit3[:, q])
        best = np.flatnonzero(objective == objective.max())
        held1 += hit1[best, q].mean()
        held3 += hit3[best, q].mean()
    print(f"leave-one-question-out (ties averaged): hit@1 {held1 / x.shape[0]:.3f}, "
          f"hit@3 {held3 / x.shape[0]:.3f}")
    if args.beir is not None:
        keep = np.flatnonzero(h1 >= args.min_hit1)
        ndcg = beir_ndcg(weights[keep], args.beir, args.beir_index or args.beir)
        current_row = np.flatnonzero(np.all(np.isclose(weights[keep], current), axis=1))
        if current_row.size:
            print(f"index settings: nDCG@10 {ndcg[current_row[0]]:.4f} on {args.beir}")
        good = np.flatnonzero(ndcg >= args.min_ndcg)
        print(f"{args.beir}: best nDCG@10 {ndcg.max():.4f} among the {keep.size} combinations "
              f"with hit@1 >= {args.min_hit1}; {good.size} of them reach nDCG@10 >= "
              f"{args.min_ndcg}; those with the best hit@3, then hit@1, then nDCG@10:")
        ranked = sorted(good, key=lambda j: (-h3[keep[j]], -h1[keep[j]], -ndcg[j]))
        for j in ranked[: args.top]:
            i = keep[j]
            print("  " + ", ".join(f"{n}={v:g}" for n, v in zip(WEIGHT_NAMES, weights[i],
                                                                 strict=True))
                  + f": nDCG@10 {ndcg[j]:.4f}; questions hit@1 {h1[i]:.3f}, "
                  f"hit@3 {h3[i]:.3f}")


if __name__ == "__main__":
    main()
