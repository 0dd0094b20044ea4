"""Where the BM25-only rankings of the two backends differ: ties, or other scores?

Run from the repository root after ``bench_milvus.py --runs DIR`` (same index, server and
collection)::

    .venv/bin/python benchmarks/milvus_bm25_ties.py --index indexes/beir-medquad \\
        --uri http://127.0.0.1:19532 --collection bench_medquad --runs DIR

For every query whose BM25-only top 10 documents differ between ``DIR/embedded-bm25.json``
and ``DIR/milvus-bm25.json``, asks both backends for the question's 100 best passages by
BM25 (the candidates a BM25-only ranking is built from) and reports the first rank where
they differ, whether the passages there have the same score on both sides (a tie, in
another order), and the largest relative score difference over the passages both return.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MEDQUAD = REPO.parent / "shared" / "datasets" / "medquad"


def top10(run: dict[str, float]) -> list[str]:
    return [d for d, _ in sorted(run.items(), key=lambda item: -item[1])[:10]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=MEDQUAD)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--uri", required=True)
    parser.add_argument("--collection", default="bench_medquad")
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--candidates", type=int, default=100)
    args = parser.parse_args()

    from crampqa import CrampQA
    from crampqa.config import Backend, SearchSettings
    from crampqa.store import current_version

    def order(name: str) -> dict[str, dict[str, float]]:
        data: dict[str, dict[str, dict[str, float]]] = json.loads(
            (args.runs / name).read_text(encoding="utf-8"))
        return data.get("order", data)  # type: ignore[arg-type]  # older files: order only

    embedded_run, milvus_run = order("embedded-bm25.json"), order("milvus-bm25.json")
    differing = [q for q in embedded_run if top10(embedded_run[q]) != top10(milvus_run[q])]
    texts = {}
    with (args.dataset / "queries.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            texts[row["_id"]] = row["text"]
    folder = current_version(args.index)
    if folder is None:
        raise SystemExit(f"No index in {args.index}.")
    embedded = CrampQA.open_version(folder)
    milvus = CrampQA.open_version(folder, search=SearchSettings(
        Backend.MILVUS, args.uri, args.collection), query_encoder=embedded.retriever.encoder)
    report = []
    for query in differing:
        a = embedded.retriever.source.lexical_hits(texts[query], args.candidates)
        b = milvus.retriever.source.lexical_hits(texts[query], args.candidates)
        rows_a, rows_b = [int(r) for r in a.rows], [int(r) for r in b.rows]
        first = next((i for i, (x, y) in enumerate(zip(rows_a, rows_b, strict=False))
                      if x != y), None)
        score_a = dict(zip(rows_a, (float(s) for s in a.scores), strict=True))
        score_b = dict(zip(rows_b, (float(s) for s in b.scores), strict=True))
        common = score_a.keys() & score_b.keys()
        report.append({
            "query": query,
            "first_differing_passage_rank": first,
            "tie_there": first is not None and abs(float(a.scores[first])
                                                   - float(b.scores[first])) <= 1e-6,
            "max_relative_score_difference": max(
                abs(score_a[r] - score_b[r]) / max(abs(score_a[r]), 1e-9) for r in common),
        })
    print(json.dumps({"differing_queries": len(differing), "queries": report}, indent=1))


if __name__ == "__main__":
    main()
