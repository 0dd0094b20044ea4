"""Choosing how documents are scored from their passages and their document evidence.

Three steps, so that trying weights costs seconds rather than a re-run of the answer
scorer (about 10 ms per question-passage pair on the 2-core machine):

    # 1. per query: the 100 candidate passages (document number, fused score, answer
    #    scorer probability for the top 30), as crampqa's default computes them
    .venv/bin/python benchmarks/doc_scoring.py passages ../shared/datasets/medquad \\
        --index indexes/medquad-docs --out /tmp/medquad-passages.jsonl
    # 2. per query: the document evidence of the candidate documents (needs the
    #    index's document vectors: `crampqa index --document-vectors`) and the naive ranking
    .venv/bin/python benchmarks/doc_scoring.py evidence ../shared/datasets/medquad \\
        --index indexes/medquad-docs --passages /tmp/medquad-passages.jsonl \\
        --out /tmp/medquad-evidence.jsonl
    # 3. the grid, chosen on the even half of the queries (sorted by ID, every other
    #    one from the first) and reported on the odd half
    .venv/bin/python benchmarks/doc_scoring.py tune ../shared/datasets/medquad \\
        --passages /tmp/medquad-passages.jsonl --evidence /tmp/medquad-evidence.jsonl

Caches are JSON lines (no pickle). nDCG@10 here is trec_eval's (linear gains); the
chosen weights are then checked with `crampqa eval` itself.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from crampqa.documents import DocumentEvidence, DocumentWeights, combine
from crampqa.engine import CrampQA
from crampqa.evaluation.datasets import load_beir
from crampqa.store import current_version

SCORER_WEIGHT = 0.05  # RetrievalSettings.scorer_weight: what the cached scores include


def _open(index: Path) -> CrampQA:
    folder = current_version(index)
    if folder is None:
        sys.exit(f"no index in {index}")
    return CrampQA.open_version(folder)


def _lines(path: Path) -> dict[str, dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return {row["qid"]: row for row in rows}


class CachedEmbedder:
    """The index's embedder, answering from vectors computed earlier by the same model
    (``vectors``) for texts it has seen; anything else is embedded."""

    def __init__(self, folder: Path) -> None:
        from crampqa.config import MODEL_NAME
        from crampqa.embedding import get_embedder

        self.inner = get_embedder(MODEL_NAME)
        self.name, self.dim = self.inner.name, self.inner.dim
        texts = json.loads((folder / "texts.json").read_text(encoding="utf-8"))
        vectors = np.load(folder / "vectors.npy", allow_pickle=False)
        self.known = {t: vectors[i] for i, t in enumerate(texts)}
        self.hits = 0

    def identity(self, known: Any = None) -> Any:
        return self.inner.identity(known)

    def encode(self, texts: Any, batch_size: int = 64) -> np.ndarray:
        missing = [t for t in texts if t not in self.known]
        if missing:
            for t, v in zip(missing, self.inner.encode(missing, batch_size), strict=True):
                self.known[t] = v
        self.hits += len(texts) - len(missing)
        return np.stack([self.known[t] for t in texts]).astype(np.float32)


def precompute(beir_dir: Path, out: Path, limit: int | None) -> None:
    """Embed every document (title + text) and title of a BEIR corpus, as the
    document-level build does, into ``out`` (resumable in chunks)."""
    from crampqa.config import MODEL_NAME
    from crampqa.corpus import read_beir_documents
    from crampqa.documents import has_title, whole_text
    from crampqa.embedding import get_embedder

    path = next(p for p in (beir_dir / "corpus.jsonl.gz", beir_dir / "corpus.jsonl")
                if p.exists())
    docs = read_beir_documents(path)[:limit]
    texts = list(dict.fromkeys([whole_text(d) for d in docs]
                               + [d.title for d in docs if has_title(d)]))
    texts.sort(key=len, reverse=True)
    out.mkdir(parents=True, exist_ok=True)
    embedder = get_embedder(MODEL_NAME)
    chunk = 1024
    parts = []
    started = time.perf_counter()
    for n, begin in enumerate(range(0, len(texts), chunk)):
        part = out / f"part-{n:03d}.npy"
        if not part.exists():
            np.save(part, embedder.encode(texts[begin : begin + chunk], 32),
                    allow_pickle=False)
            print(f"{begin + chunk}/{len(texts)} {time.perf_counter() - started:.0f} s",
                  file=sys.stderr)
        parts.append(np.load(part, allow_pickle=False))
    np.save(out / "vectors.npy", np.concatenate(parts), allow_pickle=False)
    (out / "texts.json").write_text(json.dumps(texts), encoding="utf-8")


def upgrade(index: Path, vectors: Path) -> None:
    """Run the upgrade step (add_document_level) with the precomputed vectors."""
    from crampqa.indexing import add_document_level

    embedder = CachedEmbedder(vectors)
    summary = add_document_level(index, embedder=embedder)  # type: ignore[arg-type]
    print(f"{summary}; {embedder.hits} texts from the precomputed vectors")


def cache_passages(beir_dir: Path, index: Path, out: Path, limit: int | None) -> None:
    """Step 1: the default's passage candidates per query (resumable)."""
    beir = load_beir(beir_dir, "dev")
    qa = _open(index)
    done = _lines(out) if out.exists() else {}
    queries = list(beir.queries.items())[:limit]
    started = time.perf_counter()
    with out.open("a", encoding="utf-8") as handle:
        for i, (qid, text) in enumerate(queries, start=1):
            if qid in done:
                continue
            docs, scores, probs = qa.passage_candidates(text)
            handle.write(json.dumps({"qid": qid, "docs": docs, "scores": scores,
                                     "probs": probs}) + "\n")
            handle.flush()
            if i % 50 == 0:
                print(f"{i}/{len(queries)} {time.perf_counter() - started:.0f} s",
                      file=sys.stderr)


def title_vectors(index: Path, out: Path) -> None:
    """The title vectors alone, as the document-level build makes them (cheap: titles
    are short), for an index without document vectors."""
    from crampqa.documents import has_title
    from crampqa.embedding import get_embedder

    qa = _open(index)
    docs = qa.data.documents
    embedder = get_embedder(qa.data.manifest.model.name)
    titles = sorted({d.title for d in docs if has_title(d)})
    vectors = embedder.encode(titles, 64)
    row = {t: i for i, t in enumerate(titles)}
    out_array = np.zeros((len(docs), embedder.dim), dtype=np.float32)
    for i, d in enumerate(docs):
        if has_title(d):
            out_array[i] = vectors[row[d.title]]
    np.save(out, out_array, allow_pickle=False)


def cache_evidence(beir_dir: Path, index: Path, passages: Path, out: Path, extra: int,
                   titles: Path | None = None) -> None:
    """Step 2: document evidence and the naive ranking per query. With ``titles`` (an
    index without document vectors): title vectors from that file, document BM25 built
    here, no document vector (zeros) and no naive ranking."""
    from crampqa.documents import DocumentLevel, whole_text
    from crampqa.lexical import LexicalIndex

    beir = load_beir(beir_dir, "dev")
    qa = _open(index)
    if titles is not None:
        docs = qa.data.documents
        title_array = np.load(titles, allow_pickle=False)
        qa._document_level = DocumentLevel(  # a measurement, not the product
            np.zeros_like(title_array), title_array,
            LexicalIndex.build([whole_text(d) for d in docs]))
    cached = _lines(passages)
    with out.open("w", encoding="utf-8") as handle:
        for qid, row in cached.items():
            text = beir.queries[qid]
            found = qa.document_evidence(text, row["docs"], extra)
            if found is None:
                sys.exit(f"the index in {index} has no document vectors")
            naive = [] if titles is not None else [d for d, _ in qa.rank_naive(text, 10)]
            handle.write(json.dumps({
                "qid": qid, "docs": found.docs.tolist(),
                "vector": [round(float(x), 6) for x in found.vector],
                "title": [round(float(x), 6) for x in found.title],
                "lexical": [round(float(x), 6) for x in found.lexical],
                "naive": naive}) + "\n")


def _ndcg(ranked: list[int], relevant: dict[int, int], k: int = 10) -> float:
    gains = [relevant.get(d, 0) for d in ranked[:k]]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def tune(beir_dir: Path, index: Path, passages: Path, evidence_path: Path,
         grid: bool = True, chosen_from: int | None = None) -> None:
    """Step 3: grid on the even half, figures on both halves."""
    beir = load_beir(beir_dir, "dev")
    qa = _open(index)
    doc_number = qa.data.doc_index
    cached, found = _lines(passages), _lines(evidence_path)
    qids = sorted(q for q in cached if q in found)
    halves = {"choose (even, in-sample)": qids[0::2], "held back (odd)": qids[1::2]}
    relevant = {q: {doc_number[d]: r for d, r in beir.qrels[q].items() if r > 0} for q in qids}
    data: dict[str, tuple[list[int], list[float], list[float], DocumentEvidence]] = {}
    for q in qids:
        row, ev = cached[q], found[q]
        probs = [p if p is not None else 0.0 for p in row["probs"]]
        fused = [s - SCORER_WEIGHT * p for s, p in zip(row["scores"], probs, strict=True)]
        data[q] = (row["docs"], fused, probs, DocumentEvidence(
            np.asarray(ev["docs"], dtype=np.int64), np.asarray(ev["vector"], np.float32),
            np.asarray(ev["title"], np.float32), np.asarray(ev["lexical"], np.float32)))

    def score(qs: list[str], w: DocumentWeights, scorer_weight: float) -> float:
        total = 0.0
        for q in qs:
            docs, fused, probs, ev = data[q]
            scores = [f + scorer_weight * p for f, p in zip(fused, probs, strict=True)]
            if w.active:
                ranked = [d for d, _ in combine(docs, scores, ev, w)[:10]]
            else:
                order = sorted(range(len(docs)), key=lambda i: -scores[i])
                ranked = list(dict.fromkeys(docs[i] for i in order))[:10]
            total += _ndcg(ranked, relevant[q])
        return total / max(1, len(qs))

    def rrf(qs: list[str], scorer_weight: float) -> float:
        """Reciprocal rank fusion (k = 60) of best passage, document vector, document BM25."""
        total = 0.0
        for q in qs:
            docs, fused, probs, ev = data[q]
            scores = [f + scorer_weight * p for f, p in zip(fused, probs, strict=True)]
            best = [d for d, _ in combine(docs, scores, ev, DocumentWeights(passages=1e-9))]
            fusedr: dict[int, float] = {}
            order_v = ev.docs[np.argsort(-ev.vector, kind="stable")].tolist()
            order_l = ev.docs[np.argsort(-ev.lexical, kind="stable")].tolist()
            for ranking in (best, order_v, order_l):
                for r, d in enumerate(ranking, start=1):
                    fusedr[d] = fusedr.get(d, 0.0) + 1.0 / (60 + r)
            ranked = sorted(fusedr, key=lambda d: -fusedr[d])[:10]
            total += _ndcg(ranked, relevant[q])
        return total / max(1, len(qs))

    def naive(qs: list[str]) -> float:
        if not found[qs[0]]["naive"]:
            return math.nan
        return sum(_ndcg(found[q]["naive"], relevant[q]) for q in qs) / max(1, len(qs))

    choose, held = halves["choose (even, in-sample)"], halves["held back (odd)"]
    if chosen_from is not None:  # the grid ran on the even queries of the first N only
        choose = choose[: (chosen_from + 1) // 2]
    print(f"queries: {len(qids)} ({len(choose)} choose / {len(held)} held back)")
    if not grid:
        from dataclasses import replace as _replace

        from crampqa.config import RetrievalSettings

        r = RetrievalSettings()
        chosen = DocumentWeights(vector=r.document_vector_weight, title=r.document_title_weight,
                                 lexical=r.document_lexical_weight,
                                 passages=r.document_passages_weight,
                                 temperature=r.document_temperature)
        sw = r.document_scorer_weight
        table = [("best passage (today)", DocumentWeights(), SCORER_WEIGHT),
                 ("chosen", chosen, sw),
                 ("chosen without the title vector", _replace(chosen, title=0.0), sw),
                 ("chosen without document BM25", _replace(chosen, lexical=0.0), sw),
                 ("chosen without the soft maximum", _replace(chosen, passages=0.0), sw),
                 (f"chosen with scorer weight {SCORER_WEIGHT}", chosen, SCORER_WEIGHT),
                 ("best passage, scorer weight only", DocumentWeights(), sw)]
        print(f"{'scoring':50} {'choose nDCG@10':>15} {'held nDCG@10':>13}")
        for name, w, weight in table:
            print(f"{name:50} {score(choose, w, weight):15.3f} {score(held, w, weight):13.3f}")
        return
    base = DocumentWeights()
    rows: list[tuple[str, DocumentWeights, float]] = [
        ("best passage (today)", base, SCORER_WEIGHT)]
    for name, field_name, grid in (
        ("+ document vector", "vector", (0.1, 0.2, 0.3, 0.5, 0.8)),
        ("+ title vector", "title", (0.1, 0.2, 0.3, 0.5, 0.8)),
        ("+ document BM25", "lexical", (0.05, 0.1, 0.2, 0.3, 0.5)),
        ("+ soft maximum of passages", "passages", (0.1, 0.3, 0.5, 1.0)),
    ):
        best = max(grid, key=lambda v: score(choose, DocumentWeights(**{field_name: v}),
                                             SCORER_WEIGHT))
        rows.append((f"{name} ({field_name}={best})", DocumentWeights(**{field_name: best}),
                     SCORER_WEIGHT))
    combos: list[tuple[float, DocumentWeights, float]] = []
    started = time.perf_counter()
    for v, t, lex, p, temp, sw in itertools.product(
            (0.0, 0.1, 0.2, 0.3, 0.5), (0.0, 0.1, 0.2, 0.3, 0.5), (0.0, 0.05, 0.1, 0.2),
            (0.0, 0.3, 1.0), (0.05,), (0.05, 0.2, 0.5)):
        w = DocumentWeights(vector=v, title=t, lexical=lex, passages=p, temperature=temp)
        combos.append((score(choose, w, sw), w, sw))
    combos.sort(key=lambda c: -c[0])
    print(f"grid: {len(combos)} combinations in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    for _, w, sw in combos[:5]:
        rows.append((f"fusion v={w.vector} t={w.title} l={w.lexical} p={w.passages} "
                     f"scorer={sw}", w, sw))
    print(f"{'scoring':70} {'choose nDCG@10':>15} {'held nDCG@10':>13}")
    print(f"{'naive (whole documents, RRF k=60)':70} {naive(choose):15.3f} {naive(held):13.3f}")
    for name, w, sw in rows:
        print(f"{name:70} {score(choose, w, sw):15.3f} {score(held, w, sw):13.3f}")
    name = "RRF of best passage, document vector, document BM25"
    print(f"{name:70} {rrf(choose, SCORER_WEIGHT):15.3f} {rrf(held, SCORER_WEIGHT):13.3f}")


def articles(index: Path, sets: list[Path], weights: list[float]) -> None:
    """The title as passage evidence on our articles: each passage's fused score plus
    ``w`` times the cosine of the question with its document's title vector (measured
    only; ``ask`` does not use it)."""
    import crampqa.retrieval as retrieval
    from crampqa.evaluation.datasets import load_questions
    from crampqa.evaluation.runner import evaluate_questions

    qa = CrampQA.open(None, index, auto_build=False)
    level = qa.document_level
    if level is None:
        sys.exit(f"the index in {index} has no title vectors")
    state: dict[str, Any] = {"w": 0.0}
    original_rank, original_fuse = retrieval.Retriever.rank, retrieval.fuse

    def rank(self: Any, question: str, *args: Any, **kwargs: Any) -> Any:
        state["q"] = self.embed_question(question)
        return original_rank(self, question, *args, **kwargs)

    def fuse(cands: Any, settings: Any) -> Any:
        ranked = original_fuse(cands, settings)
        if not state["w"]:
            return ranked
        table = qa.data.passages
        for c in ranked:
            c.score += state["w"] * float(level.titles[table.doc_number(c.row)] @ state["q"])
        return sorted(ranked, key=lambda c: (-c.score, c.row))

    retrieval.Retriever.rank = rank  # type: ignore[method-assign]
    retrieval.fuse = fuse
    for path in sets:
        questions = load_questions(path)
        for w in weights:
            state["w"] = w
            m = evaluate_questions(qa, questions, ["default"]).configs[0].metrics
            print(f"{path} title weight {w}: hit@1 {m['hit@1']:.3f} hit@3 {m['hit@3']:.3f} "
                  f"nDCG@10 {m['nDCG@10']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("vectors")
    p.add_argument("beir", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--limit", type=int)
    p = sub.add_parser("titles")
    p.add_argument("--index", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("articles")
    p.add_argument("sets", type=Path, nargs="+")
    p.add_argument("--index", type=Path, required=True)
    p.add_argument("--weights", default="0,0.05,0.1,0.2")
    p = sub.add_parser("upgrade")
    p.add_argument("--index", type=Path, required=True)
    p.add_argument("--vectors", type=Path, required=True)
    for name in ("passages", "evidence", "tune"):
        p = sub.add_parser(name)
        p.add_argument("beir", type=Path)
        p.add_argument("--index", type=Path, required=True)
        if name == "passages":
            p.add_argument("--out", type=Path, required=True)
            p.add_argument("--limit", type=int)
        if name in ("evidence", "tune"):
            p.add_argument("--passages", type=Path, required=True)
        if name == "evidence":
            p.add_argument("--out", type=Path, required=True)
            p.add_argument("--extra", type=int, default=20)
            p.add_argument("--titles", type=Path)
        if name == "tune":
            p.add_argument("--evidence", type=Path, required=True)
            p.add_argument("--no-grid", action="store_true",
                           help="only the chosen weights (RetrievalSettings) and ablations")
            p.add_argument("--chosen-from", type=int,
                           help="the grid ran on the first N cached queries: the choosing "
                           "half is their even ones")
    args = parser.parse_args()
    if args.command == "vectors":
        precompute(args.beir, args.out, args.limit)
    elif args.command == "titles":
        title_vectors(args.index, args.out)
    elif args.command == "articles":
        articles(args.index, args.sets, [float(w) for w in args.weights.split(",")])
    elif args.command == "upgrade":
        upgrade(args.index, args.vectors)
    elif args.command == "passages":
        cache_passages(args.beir, args.index, args.out, args.limit)
    elif args.command == "evidence":
        cache_evidence(args.beir, args.index, args.passages, args.out, args.extra,
                       args.titles)
    else:
        tune(args.beir, args.index, args.passages, args.evidence, not args.no_grid,
             args.chosen_from)


if __name__ == "__main__":
    main()
