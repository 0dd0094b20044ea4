"""Same answers on Milvus: the embedded backend against the Milvus backend on a BEIR set.

Run from the repository root with a Milvus server running (milvus-lite will do), on an
existing index of the set (nothing is embedded; the index folder is only read)::

    .venv/bin/milvus-lite server --data-dir /tmp/milvus-data --host 127.0.0.1 --port 19530 &
    .venv/bin/python benchmarks/bench_milvus.py --index indexes/beir-medquad \\
        --uri http://127.0.0.1:19530 --json > milvus.json

What it does:

1. migrates the index's current version into the collection (``crampqa.milvus.sync``, as
   ``crampqa index --backend milvus`` does): entities upserted, seconds;
2. evaluates the BEIR split's first ``--queries`` queries (document ranking, k=10) with
   the dense-only and BM25-only configurations and the default one, on the embedded
   backend as built and on Milvus (exact FLAT dense index, BM25 with bm25s's k1 and b);
   when the index's own dense index is approximate (HNSW), the dense-only configuration
   also runs on an exact FAISS index of the same vectors, since Milvus searches exactly;
3. reports, per configuration, the share of queries whose top 10 documents are the same
   in the same order, nDCG@10 on each backend, and the median query latency (the
   evaluation's own timing of ``rank_documents``; same questions, one run each).

Skips with a clear message when pymilvus is missing or no server answers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MEDQUAD = REPO.parent / "shared" / "datasets" / "medquad"


def log(message: str) -> None:
    print(f"[bench_milvus {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def progress(stage: str, done: int, total: int) -> None:
    if done and (done % 50 == 0 or done == total):
        log(f"{stage}: {done}/{total}")


def same_top(one: dict[str, dict[str, float]], two: dict[str, dict[str, float]],
             k: int = 10) -> float:
    """Share of queries whose top ``k`` documents are the same, in the same order."""
    def top(run: dict[str, float]) -> list[str]:
        return [d for d, _ in sorted(run.items(), key=lambda item: -item[1])[:k]]

    same = sum(top(one.get(q, {})) == top(two.get(q, {})) for q in one)
    return same / max(1, len(one))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=MEDQUAD)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--uri", required=True)
    parser.add_argument("--collection", default="bench_medquad")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--configs", default="dense,bm25,default")
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    parser.add_argument("--runs", type=Path, default=None,
                        help="Also write every ranking here (its order, and crampqa's own "
                             "scores), one JSON file per backend and configuration.")
    args = parser.parse_args()

    from crampqa import CrampQA
    from crampqa.config import AnnKind, Backend, SearchSettings
    from crampqa.dense import DenseIndex
    from crampqa.errors import BackendError
    from crampqa.evaluation.runner import evaluate_beir, prepare_beir
    from crampqa.milvus import sync
    from crampqa.store import current_version

    folder = current_version(args.index)
    if folder is None:
        sys.exit(f"No index in {args.index}.")
    settings = SearchSettings(Backend.MILVUS, args.uri, args.collection)
    embedded = CrampQA.open_version(folder)
    try:
        log(f"migrating {len(embedded.data.passages)} passages into {args.collection}")
        migrated = sync(embedded.data, settings)
    except BackendError as exc:
        print(f"skipped: {exc.message}", file=sys.stderr)
        return
    log(f"migration: {migrated}")
    milvus = CrampQA.open_version(folder, search=settings,
                                  query_encoder=embedded.retriever.encoder)
    beir = prepare_beir(args.dataset, args.split, args.queries)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    results: dict[str, dict[str, Any]] = {}
    for name, qa in (("embedded", embedded), ("milvus", milvus)):
        log(f"evaluating {name}: {configs} on {len(beir.queries)} queries")
        results[name] = {c.name: c for c in evaluate_beir(qa, beir, configs, 10, progress).configs}
    dense_kind = embedded.retriever.dense.kind if embedded.retriever.dense else "flat"
    if dense_kind != "flat" and "dense" in configs:
        log("evaluating embedded with an exact FAISS index (dense only)")
        exact = CrampQA.open_version(folder, query_encoder=embedded.retriever.encoder)
        exact.retriever.dense = DenseIndex.build(
            exact.data.embeddings, AnnKind.FLAT)
        results["embedded-flat"] = {c.name: c for c in
                                    evaluate_beir(exact, beir, ["dense"], 10, progress).configs}
    report: dict[str, Any] = {
        "dataset": str(args.dataset), "split": args.split, "queries": len(beir.queries),
        "passages": len(embedded.data.passages), "embedded_dense_index": dense_kind,
        "migration": {"upserted": migrated.upserted, "deleted": migrated.deleted,
                      "unchanged": migrated.unchanged, "seconds": round(migrated.seconds, 1)},
        "configs": {},
    }
    for name in configs:
        one, two = results["embedded"][name], results["milvus"][name]
        row: dict[str, Any] = {
            "same_top10_vs_embedded": round(same_top(one.run, two.run), 4),
            "ndcg10_embedded": round(one.metrics["nDCG@10"], 4),
            "ndcg10_milvus": round(two.metrics["nDCG@10"], 4),
            "p50_ms_embedded": round(one.latency["p50_ms"], 1),
            "p50_ms_milvus": round(two.latency["p50_ms"], 1),
        }
        flat = results.get("embedded-flat", {}).get(name)
        if flat is not None:
            row["same_top10_vs_embedded_flat"] = round(same_top(flat.run, two.run), 4)
            row["ndcg10_embedded_flat"] = round(flat.metrics["nDCG@10"], 4)
            row["p50_ms_embedded_flat"] = round(flat.latency["p50_ms"], 1)
        report["configs"][name] = row
    if args.runs is not None:
        args.runs.mkdir(parents=True, exist_ok=True)
        for backend, by_config in results.items():
            for name, config in by_config.items():
                (args.runs / f"{backend}-{name}.json").write_text(json.dumps(
                    {"order": config.run, "scores": config.raw_scores}))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, row in report["configs"].items():
            print(name, row)


if __name__ == "__main__":
    main()
