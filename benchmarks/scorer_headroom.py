"""How much the answer scorer could still give: other orders and other abstention scores.

For every question of the given sets, the top ``--depth`` fused candidates (the fast mode's
order) are read once with the scorer's probability; then, without asking again:

* **order**: hit@1/hit@3 (answerable questions; a hit is a passage containing the
  question's evidence) when the candidates are ordered by fused + w x probability for
  several w (0.05 is the shipped setting), by the scorer alone among candidates within a
  margin of the best fused score, by reciprocal-rank fusion of the two orders, or by
  fused + w x logit. Overlaps and near-duplicates are not removed here, so figures can
  differ from ``crampqa eval`` by a question.
* **abstention**: for several confidence scores, the area under the curve for answerable
  against near-topic unanswerable questions, and the best share of near-topic questions
  abstained at <= 5 % of answerable ones abstained **with the threshold picked on each set
  itself** (an oracle: an upper bound for that score, not a figure to ship). The
  rule-based reasons (crampqa/abstention.py) are not applied here.

    .venv/bin/python benchmarks/scorer_headroom.py eval/dev.jsonl eval/heldout.jsonl \\
        eval/blind.jsonl eval/questions.jsonl --json /tmp/headroom.json
    # a newly trained scorer, on the tuning sets only (its settings are chosen there)
    .venv/bin/python benchmarks/scorer_headroom.py eval/dev.jsonl eval/dev2.jsonl \\
        --scorer /tmp/new-scorer
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from crampqa import CrampQA
from crampqa.engine import clean_question
from crampqa.evaluation.datasets import contains_evidence, load_questions
from crampqa.retrieval import with_overrides

Cand = dict[str, Any]
Row = dict[str, Any]


def read_candidates(qa: CrampQA, path: Path, depth: int) -> list[Row]:
    """Each question's top ``depth`` fused candidates with the scorer's probability."""
    retriever, table = qa.retriever, qa.data.passages
    fast = with_overrides(qa.retrieval_settings, scorer=False)
    assert retriever.scorer is not None
    rows = []
    for q in load_questions(path):
        text = clean_question(q.question)
        ranking = retriever.rank(text, depth, fast, diversify=False)
        head = ranking.candidates[:depth]
        corrected = retriever.lexical.corrected(text, retriever._surface_form)
        probs = retriever.scorer.probabilities(
            corrected, [table.indexed_text(c.row) for c in head])
        rows.append({
            "id": q.id, "answerable": q.answerable, "tags": list(q.tags),
            "fusion_conf": float(ranking.confidence),
            "cands": [{"fused": float(c.score), "prob": float(p),
                       "hit": bool(q.answerable and contains_evidence(table.text(c.row),
                                                                      q.evidence))}
                      for c, p in zip(head, probs, strict=True)],
        })
    return rows


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def ordered(cands: list[Cand], mode: str, p: float) -> list[Cand]:
    """The candidates in the order that ``mode`` with parameter ``p`` gives."""
    if mode == "add":
        return sorted(cands, key=lambda c: -(c["fused"] + p * c["prob"]))
    if mode == "logit":
        return sorted(cands, key=lambda c: -(c["fused"] + p * _logit(c["prob"])))
    if mode == "margin":
        best = max(c["fused"] for c in cands)
        near = [c for c in cands if best - c["fused"] <= p]
        return sorted(near, key=lambda c: -c["prob"]) + [c for c in cands if c not in near]
    by_fused = {id(c): i for i, c in enumerate(sorted(cands, key=lambda c: -c["fused"]))}
    by_prob = {id(c): i for i, c in enumerate(sorted(cands, key=lambda c: -c["prob"]))}
    return sorted(cands, key=lambda c: -(1 / (p + by_fused[id(c)]) + 1 / (p + by_prob[id(c)])))


ORDERS = [("add", w) for w in (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 3.0)] + \
    [("margin", m) for m in (0.01, 0.03, 0.05)] + [("rrf", k) for k in (1.0, 10.0, 60.0)] + \
    [("logit", w) for w in (0.005, 0.01, 0.02, 0.05)]


def hits(rows: list[Row], mode: str, p: float, depth: int = 0) -> tuple[float, float]:
    """hit@1 and hit@3 over the answerable questions; with ``depth``, only the first
    ``depth`` fused candidates are re-ordered (as if only they were scored)."""
    answerable = [r for r in rows if r["answerable"] and r["cands"]]

    def order(cands: list[Cand]) -> list[Cand]:
        if depth:
            return ordered(cands[:depth], mode, p) + cands[depth:]
        return ordered(cands, mode, p)
    h1 = sum(order(r["cands"])[0]["hit"] for r in answerable)
    h3 = sum(any(c["hit"] for c in order(r["cands"])[:3]) for r in answerable)
    return h1 / len(answerable), h3 / len(answerable)


def _top3(r: Row) -> float:
    return float(max(c["prob"] for c in ordered(r["cands"], "add", 0.05)[:3]))


CONFIDENCES: dict[str, Callable[[Row], float]] = {
    "shipped: best p in top 3 + (fusion - 0.46)": lambda r: _top3(r) + r["fusion_conf"] - 0.46,
    "best p in top 3": _top3,
    "best p in top 12": lambda r: max(c["prob"] for c in r["cands"]),
    "p of the first": lambda r: ordered(r["cands"], "add", 0.05)[0]["prob"],
    "best p in top 3 + 0.5 (fusion - 0.46)":
        lambda r: _top3(r) + 0.5 * (r["fusion_conf"] - 0.46),
    "best p in top 3 + 2 (fusion - 0.46)": lambda r: _top3(r) + 2 * (r["fusion_conf"] - 0.46),
}


def headroom(rows: list[Row], score: Callable[[Row], float]) -> dict[str, float]:
    """AUC (answerable above near-topic) and the oracle operating point at <= 5 % false."""
    def group(r: Row) -> str:
        if r["answerable"]:
            return "ans"
        return "near" if {"near-topic", "not_covered"} & set(r["tags"]) else "off"
    vals: dict[str, list[float]] = {"ans": [], "near": [], "off": []}
    for r in rows:
        if r["cands"]:
            vals[group(r)].append(score(r))
    ans, near, off = (np.asarray(vals[g]) for g in ("ans", "near", "off"))
    auc = float(np.mean([[1.0 if a > b else 0.5 if a == b else 0.0 for b in near]
                         for a in ans])) if near.size and ans.size else math.nan
    best = {"threshold": math.nan, "near": math.nan, "off": math.nan, "false": math.nan}
    for t in np.arange(0.0, 1.6, 0.02):
        false = float((ans < t).mean())
        share = float((near < t).mean()) if near.size else math.nan
        if false <= 0.05 and (math.isnan(best["near"]) or share > best["near"]):
            best = {"threshold": round(float(t), 2), "near": share,
                    "off": float((off < t).mean()) if off.size else math.nan, "false": false}
    return {"auc": auc, **best}


def main(argv: list[str] | None = None) -> int:
    """Read the candidates once per set, then print both tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="+", type=Path)
    parser.add_argument("--depth", type=int, default=12)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--score-depths", type=lambda v: [int(x) for x in v.split(",")],
                        default=[4, 6, 8], help="also re-order only the first N fused "
                        "candidates (fewer pairs scored per question)")
    parser.add_argument("--scorer", type=Path, help="another scorer folder (default: the "
                        "packaged one), e.g. a newly trained one")
    args = parser.parse_args(argv)
    qa = CrampQA.open()
    if args.scorer:
        from crampqa.scorer import PassageScorer

        qa.retriever._scorer = PassageScorer.load(args.scorer)
    data = {p.name: read_candidates(qa, p, args.depth) for p in args.sets}
    print("order (hit@1 / hit@3)".ljust(24) + "".join(n.ljust(16) for n in data))
    orders = {}
    for mode, p in ORDERS:
        cells = {n: hits(rows, mode, p) for n, rows in data.items()}
        orders[f"{mode} {p:g}"] = cells
        print(f"{mode} {p:g}".ljust(24) + "".join(f"{h1:.3f}/{h3:.3f}".ljust(16)
                                                   for h1, h3 in cells.values()))
    for depth in args.score_depths:
        for w in (0.05, 0.2, 0.5, 1.0):
            cells = {n: hits(rows, "add", w, depth) for n, rows in data.items()}
            orders[f"add {w:g} scoring {depth}"] = cells
            print(f"add {w:g}, {depth} scored".ljust(24) + "".join(
                f"{h1:.3f}/{h3:.3f}".ljust(16) for h1, h3 in cells.values()))
    print("\nabstention: AUC; oracle near-topic share abstained at <= 5 % false")
    scores = {}
    for name, fn in CONFIDENCES.items():
        print(name)
        scores[name] = {n: headroom(rows, fn) for n, rows in data.items()}
        for n, h in scores[name].items():
            print(f"  {n:18} AUC {h['auc']:.3f}  t={h['threshold']:.2f} near "
                  f"{h['near']:.2f} off {h['off']:.2f} false {h['false']:.3f}")
    if args.json:
        args.json.write_text(json.dumps({"orders": orders, "abstention": scores}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
