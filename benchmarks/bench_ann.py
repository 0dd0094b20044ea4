"""Search stage alone: exact (FAISS IndexFlatIP) vs crampqa's approximate index.

Two modes, both using the product's own :class:`crampqa.dense.DenseIndex` (same index type,
parameters and thread setting as ``crampqa index --ann hnsw`` / ``auto`` and as a query):

**Synthetic (default)**: ``--n`` vectors of 384 dimensions (1,000,000 by default) that look
like MiniLM embeddings of health text, not like i.i.d. Gaussian noise (on structureless
random data an ANN index's recall says nothing about real use). How they are made:

1. *Seeds*: the real all-MiniLM-L6-v2 vectors of an index folder (``--source``, default
   ``indexes/bench-medquad`` when built, else ``indexes/default``): its passage
   embeddings and sentence embeddings, exact duplicates removed.
2. *Held-out queries*: ``--queries`` seeds drawn at random are removed from the seeds
   before anything is generated, and used as queries; neither they nor anything made from
   them is in the base set. When the source index has its ONNX query encoder and
   ``--questions`` (default ``../shared/datasets/medquad/queries.jsonl``) exists, the real
   questions, embedded with that encoder exactly as a query is, are a second query set.
3. *Neighbours*: for every seed, its ``--neighbours`` nearest other seeds (found with a
   FAISS IVF index; approximate neighbours are good enough to generate from).
4. *Generation*: each base vector is ``normalise(x_a + t (x_b - x_a) + eta |x_b - x_a| e)``
   with ``x_a`` a random seed, ``x_b`` one of its neighbours, ``t ~ U(0, 0.5)`` and ``e``
   Gaussian noise with the covariance of the seeds (scaled to unit expected norm), so the
   noise follows the directions real embeddings vary in and its size follows the local
   spacing of real points (``--eta``, default 0.5). The base fills the real embedding
   manifold between real neighbours: its clusters, anisotropy and local density follow the
   real data, with no exact copies of any real vector.
5. *Realism check* (printed): the median cosine of a query to its 1st and 10th nearest
   neighbour, and the local intrinsic dimensionality (maximum-likelihood estimate from the
   10 nearest distances), in the real seeds, in a synthetic set of the same size (the first
   rows of the base: same density, so directly comparable), and in the whole synthetic
   base; ``--gaussian-control`` adds i.i.d. Gaussian unit vectors for contrast. With
   ``eta`` 0.5 the synthetic set is slightly *harder* than the real one (a little higher
   intrinsic dimensionality, lower neighbour cosines), so recall measured on it is a
   conservative estimate.

Then: exact ground truth by a batched flat search; flat build time, memory and
per-question latency; approximate-index build time (``DenseIndex.build(kind="hnsw")``,
FAISS's default threads, as in ``crampqa index``), memory (growth of the process's resident
memory, and the written file's size) and per-question latency; recall@10 against exact for
each query set; a sweep of the approximate index's search parameter; and the flat latency
at smaller collection sizes (``--sizes``, prefixes of the same base) to place the
flat/approximate threshold.

Latency is per single question, one query at a time through ``DenseIndex.search`` with
``k`` = the product's ``dense_candidates`` (50), as a question is answered; recall@10 is
taken from the top 10 of that search, strictly by IDs and counting exact ties as found
(see :func:`recall`). FAISS search runs on ``crampqa.dense.SEARCH_THREADS``
(1) OpenMP thread, as the product does; ``--sizes`` also times FAISS's default thread count
(alternating query by query) to show why.

**Real (``--real``)**: base = the real passage embeddings of ``--source`` (what crampqa
searches), then passages + sentence embeddings together (a larger real set); queries = the
real questions embedded with the index's ONNX encoder. Reports recall@10 and latency of the
approximate index against exact, with the same parameter sweep; then, end to end,
``CrampQA.ask(q, k=10)`` for every question on that index with its own dense index and with
the approximate one swapped in: how many answers change, and warm latency of both.

    .venv/bin/python benchmarks/bench_ann.py                       # 1M synthetic, full report
    .venv/bin/python benchmarks/bench_ann.py --n 100000 --sizes 50000
    .venv/bin/python benchmarks/bench_ann.py --real
    .venv/bin/python benchmarks/bench_ann.py --json results.json   # also save the figures

Progress goes to stderr, the report (JSON) to stdout. Takes about 11 minutes at 1M on 2 cores
and 6 GB of memory; `--real` about 3 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crampqa import dense as dense_mod  # noqa: E402
from crampqa.config import RetrievalSettings  # noqa: E402
from crampqa.dense import DenseIndex  # noqa: E402

DEFAULT_QUESTIONS = ROOT.parent / "shared" / "datasets" / "medquad" / "queries.jsonl"
K_RECALL = 10


def log(message: str) -> None:
    """Progress line on stderr."""
    print(f"[bench_ann {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def rss_mb() -> float:
    """Current resident memory of this process, MiB (Linux /proc)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def loadavg() -> list[float]:
    """1/5/15-minute load average."""
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------------------- data


def default_source() -> Path:
    """The MedQuAD benchmark index when it exists, else the default index."""
    big = ROOT / "indexes" / "bench-medquad"
    return big if (big / "CURRENT").is_file() else ROOT / "indexes" / "default"


def version_folder(root: Path) -> Path:
    """``root/<CURRENT>`` (or ``root`` itself when it is a version folder)."""
    if (root / "embeddings.npy").is_file():
        return root
    current = root / "CURRENT"
    if not current.is_file():
        raise SystemExit(f"bench_ann: no index in {root} (no CURRENT file)")
    return root / current.read_text(encoding="utf-8").strip()


def load_real(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(passage vectors, sentence vectors) of an index version, float32, no pickle."""
    passages = np.load(folder / "embeddings.npy", allow_pickle=False)
    sentences = np.load(folder / "sentence_embeddings.npy", allow_pickle=False)
    return (np.ascontiguousarray(passages, dtype=np.float32),
            np.ascontiguousarray(sentences, dtype=np.float32))


def unique_rows(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` without exact duplicates, in first-seen order."""
    _, first = np.unique(x, axis=0, return_index=True)
    return x[np.sort(first)]


def embed_questions(folder: Path, path: Path, limit: int) -> np.ndarray | None:
    """Real questions embedded with the index's ONNX query encoder (as at query time)."""
    if not path.is_file() or not (folder / "encoder" / "model.onnx").is_file():
        return None
    from crampqa.onnx_encoder import OnnxEncoder

    texts = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                texts.append(str(json.loads(line)["text"]))
    texts = texts[:limit] if limit > 0 else texts
    log(f"embedding {len(texts)} questions from {path} with {folder / 'encoder'}")
    return OnnxEncoder(folder / "encoder").encode(texts, batch_size=64).astype(np.float32)


def seed_neighbours(seeds: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Approximate ``k`` nearest other seeds of every seed (IVF, inner product); -1 = none."""
    import faiss

    n, dim = seeds.shape
    nlist = int(min(max(16, 4 * np.sqrt(n)), n // 39 or 1))
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    train = seeds[rng.choice(n, size=min(n, 256 * nlist), replace=False)]
    ivf.train(train)
    ivf.add(seeds)
    ivf.nprobe = min(nlist, 16)
    _, ids = ivf.search(seeds, k + 1)
    out = np.full((n, k), -1, dtype=np.int64)
    for i in range(n):
        row = ids[i][(ids[i] != i) & (ids[i] >= 0)][:k]
        out[i, : len(row)] = row
    return out


def synthesize(seeds: np.ndarray, n: int, rng: np.random.Generator, neighbours: int = 8,
               eta: float = 0.5, chunk: int = 100_000) -> np.ndarray:
    """``n`` unit vectors on the manifold of ``seeds`` (see the module docstring)."""
    log(f"neighbours of {len(seeds)} seeds (IVF, k={neighbours})")
    nbrs = seed_neighbours(seeds, neighbours, rng)
    centred = seeds - seeds.mean(axis=0)
    cov = (centred.T @ centred) / len(seeds)
    cov /= np.trace(cov)  # unit expected squared norm
    evals, evecs = np.linalg.eigh(cov.astype(np.float64))
    noise_map = (evecs * np.sqrt(np.clip(evals, 0, None))).T.astype(np.float32)  # z @ map
    dim = seeds.shape[1]
    out = np.empty((n, dim), dtype=np.float32)
    log(f"generating {n} vectors (eta={eta})")
    for begin in range(0, n, chunk):
        m = min(chunk, n - begin)
        a = rng.integers(0, len(seeds), size=m)
        b = nbrs[a, rng.integers(0, neighbours, size=m)]
        b = np.where(b >= 0, b, a)
        xa, xb = seeds[a], seeds[b]
        t = rng.uniform(0.0, 0.5, size=(m, 1)).astype(np.float32)
        spacing = np.linalg.norm(xb - xa, axis=1, keepdims=True)
        spacing = np.where(spacing > 0, spacing, np.median(spacing[spacing > 0]))
        noise = rng.standard_normal((m, dim), dtype=np.float32) @ noise_map
        y = xa + t * (xb - xa) + eta * spacing * noise
        y /= np.linalg.norm(y, axis=1, keepdims=True)
        out[begin : begin + m] = y
    return out


def gaussian_unit(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """i.i.d. Gaussian vectors normalised to unit length (the structureless control)."""
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


# ---------------------------------------------------------------------------- measures


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact (scores, ids), batched (ground truth; all threads)."""
    import faiss

    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    scores, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return scores, ids


def lid_mle(scores: np.ndarray, k: int = 10) -> float:
    """Median local intrinsic dimensionality (MLE, Levina-Bickel) from top-k cosines."""
    dist = np.sqrt(np.clip(2.0 - 2.0 * scores[:, :k].astype(np.float64), 1e-12, None))
    ratios = np.log(dist[:, :-1] / dist[:, -1:])
    mean = ratios.mean(axis=1)
    lid = -1.0 / np.where(mean < 0, mean, -1e-12)
    return float(np.median(lid))


def structure(scores: np.ndarray) -> dict[str, float]:
    """Median 1st/10th-neighbour cosine and LID of a query set against a base set."""
    return {"top1_cos": round(float(np.median(scores[:, 0])), 3),
            "top10_cos": round(float(np.median(scores[:, K_RECALL - 1])), 3),
            "lid": round(lid_mle(scores, K_RECALL), 1)}


def time_queries(search: Callable[[np.ndarray], Any], queries: np.ndarray,
                 warmup: int = 20) -> tuple[list[float], list[Any]]:
    """Per-query wall times (ms) of ``search`` one query at a time, and its results."""
    for q in queries[:warmup]:
        search(q)
    times, results = [], []
    for q in queries:
        t0 = time.perf_counter()
        res = search(q)
        times.append((time.perf_counter() - t0) * 1000)
        results.append(res)
    return times, results


Result = tuple[np.ndarray, np.ndarray]  # (rows, scores) of one search
Truth = tuple[np.ndarray, np.ndarray]  # (scores, ids) of the exact top 10, one row a query


def searcher(index: DenseIndex, k: int) -> Callable[[np.ndarray], Result]:
    """One question's search as the product runs it."""
    def search(query: np.ndarray) -> Result:
        return index.search(query, k)
    return search


def pct(times: list[float]) -> dict[str, float]:
    """p50/p95/mean of a list of ms."""
    a = np.asarray(times)
    return {"p50_ms": round(float(np.percentile(a, 50)), 3),
            "p95_ms": round(float(np.percentile(a, 95)), 3),
            "mean_ms": round(float(a.mean()), 3)}


def recall(results: list[Result], truth: Truth, k: int = K_RECALL) -> dict[str, float]:
    """recall@k against exact search, two ways.

    ``ids``: mean |approx top-k ∩ exact top-k| / k (strict; an exact duplicate of a top-k
    vector returned instead of it counts as a miss). ``ties``: the share of the approximate
    top k whose score reaches the exact k-th score (ann-benchmarks' definition; duplicates
    and exact ties count as found).
    """
    scores, ids = truth
    strict, tied = [], []
    for (rows, got), t_ids, t_scores in zip(results, ids, scores, strict=True):
        strict.append(len(set(rows[:k].tolist()) & set(t_ids[:k].tolist())))
        tied.append(int(np.sum(got[:k] >= t_scores[k - 1] - 1e-5)))
    return {"ids": round(float(np.mean(strict)) / k, 4),
            "ties": round(float(np.mean(tied)) / k, 4)}


def cut(truth: Truth, n: int) -> Truth:
    """The first ``n`` queries of a ground truth."""
    return truth[0][:n], truth[1][:n]


def file_mb(index: DenseIndex) -> float:
    """Size of the index as written by ``DenseIndex.save`` (what ``dense.faiss`` takes)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dense.faiss"
        index.save(path)
        return round(path.stat().st_size / 2**20, 1)


def build_measured(vectors: np.ndarray, kind: str) -> tuple[DenseIndex, dict[str, Any]]:
    """Build with the product's code; wall time, RSS growth and file size."""
    before = rss_mb()
    t0 = time.perf_counter()
    index = DenseIndex.build(vectors, kind)
    seconds = time.perf_counter() - t0
    grown = rss_mb() - before
    info = {"build_s": round(seconds, 2), "vectors_per_s": round(len(vectors) / seconds),
            "rss_growth_mb": round(grown, 1), "file_mb": file_mb(index),
            "bytes_per_vector": round(file_mb(index) * 2**20 / max(len(vectors), 1)),
            "params": index.describe()}
    return index, info


def sweep_values(index: DenseIndex) -> list[int]:
    """Search-parameter values to sweep for the approximate index."""
    name = index.describe().get("type")
    if name == "hnsw":
        return [32, 64, 128, 256, 384, 512]
    return []


def measure_approx(index: DenseIndex, query_sets: dict[str, np.ndarray],
                   truths: dict[str, Truth], k: int,
                   latency_limit: int) -> dict[str, Any]:
    """Latency (all query sets together) and recall per set at the product's setting,
    then the sweep of the search parameter."""
    def run(limit: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        all_times: list[float] = []
        for name, qs in query_sets.items():
            times, res = time_queries(searcher(index, k), qs[:limit])
            all_times += times
            r = recall(res, cut(truths[name], limit))
            out[f"recall@10_{name}"] = r["ids"]
            out[f"recall@10_ties_{name}"] = r["ties"]
        out.update(pct(all_times))
        return out

    result: dict[str, Any] = {"product": {**index.describe(), **run(latency_limit)}}
    sweep = []
    default = index.describe().get("efSearch")
    for value in sweep_values(index):
        index.set_search_param(value)
        row = {"efSearch": value, **run(latency_limit)}
        sweep.append(row)
        log(f"  efSearch={value}: {row}")
    if default is not None:
        index.set_search_param(int(default))
    result["sweep"] = sweep
    return result


# ---------------------------------------------------------------------------- modes


def synthetic(args: argparse.Namespace) -> dict[str, Any]:
    """The 1M (``--n``) synthetic benchmark."""
    rng = np.random.default_rng(args.seed)
    folder = version_folder(args.source)
    passages, sentences = load_real(folder)
    real = unique_rows(np.concatenate([passages, sentences]))
    log(f"{len(real)} distinct real vectors from {folder} "
        f"({len(passages)} passages + {len(sentences)} sentences)")
    order = rng.permutation(len(real))
    held = real[order[: args.queries]]
    seeds = real[order[args.queries :]]
    query_sets: dict[str, np.ndarray] = {"heldout": held}
    questions = None if args.no_questions else embed_questions(folder, args.questions,
                                                               args.queries)
    if questions is not None:
        query_sets["questions"] = questions
    base = synthesize(seeds, args.n, rng, args.neighbours, args.eta)
    k = RetrievalSettings().dense_candidates
    report: dict[str, Any] = {
        "mode": "synthetic", "n": args.n, "dim": int(base.shape[1]), "source": str(folder),
        "real_vectors": len(real), "seeds": len(seeds), "eta": args.eta,
        "neighbours": args.neighbours, "k_searched": k,
        "queries": {name: len(q) for name, q in query_sets.items()},
        "search_threads": dense_mod.SEARCH_THREADS,
    }

    log("exact ground truth (batched flat search)")
    truths: dict[str, Truth] = {}
    realism: dict[str, Any] = {}
    for name, qs in query_sets.items():
        scores, ids = exact_topk(base, qs, K_RECALL)
        truths[name] = (scores, ids)
        real_scores, _ = exact_topk(seeds, qs, K_RECALL)
        same_scores, _ = exact_topk(base[: len(seeds)], qs, K_RECALL)
        realism[name] = {"real_seeds": structure(real_scores),
                         "synthetic_same_size": structure(same_scores),
                         "synthetic_base": structure(scores)}
    if args.gaussian_control:
        gauss = gaussian_unit(min(args.n, 200_000), base.shape[1], rng)
        g_scores, _ = exact_topk(gauss, held, K_RECALL)
        realism["gaussian_control"] = {"n": len(gauss), **structure(g_scores)}
        del gauss
    report["realism"] = realism
    log(f"realism: {json.dumps(realism)}")

    log("flat: build and per-question latency")
    flat, flat_build = build_measured(base, "flat")
    lat_queries = {name: qs[: args.flat_queries] for name, qs in query_sets.items()}
    times: list[float] = []
    flat_recall = {}
    for name, qs in lat_queries.items():
        t, res = time_queries(searcher(flat, k), qs)
        times += t
        flat_recall[name] = recall(res, cut(truths[name], len(qs)))
    report["flat"] = {**flat_build, **pct(times), "latency_queries": len(times),
                      "recall@10_check": flat_recall}
    log(f"flat: {report['flat']}")
    del flat

    log(f"approximate ({dense_mod.APPROX_KIND}): build with FAISS's "
        f"default threads")
    approx, approx_build = build_measured(base, dense_mod.APPROX_KIND)
    log(f"approximate build: {approx_build}")
    measured = measure_approx(approx, query_sets, truths, k, args.queries)
    report["approx"] = {**approx_build, **measured["product"], "sweep": measured["sweep"]}
    log(f"approximate: {measured['product']}")
    del approx

    if args.sizes:
        report["flat_by_size"] = flat_by_size(base, held, args, k)
    return report


def flat_by_size(base: np.ndarray, queries: np.ndarray, args: argparse.Namespace,
                 k: int) -> list[dict[str, Any]]:
    """Flat p50/p95 per question at smaller sizes, product threads vs FAISS default."""
    import faiss

    default_threads = faiss.omp_get_max_threads()
    rows = []
    for size in sorted({*args.sizes, len(base)}):
        if size > len(base):
            continue
        index = DenseIndex.build(base[:size], "flat")
        qs = queries[: args.flat_queries]
        product, default = [], []
        for _ in range(2):  # warm-up
            index.search(qs[0], k)
        for i, q in enumerate(qs):  # alternate which setting goes first
            order = (True, False) if i % 2 == 0 else (False, True)
            for use_product in order:
                if use_product:
                    t0 = time.perf_counter()
                    index.search(q, k)
                    product.append((time.perf_counter() - t0) * 1000)
                else:
                    with dense_mod.omp_threads(default_threads):
                        t0 = time.perf_counter()
                        index._index.search(q.reshape(1, -1), k)
                        default.append((time.perf_counter() - t0) * 1000)
        row = {"n": size, "product": pct(product),
               f"faiss_default_{default_threads}_threads": pct(default)}
        log(f"flat at {size}: {row}")
        rows.append(row)
        del index
    return rows


def real(args: argparse.Namespace) -> dict[str, Any]:
    """Recall of the approximate index on real MedQuAD vectors and real questions."""
    folder = version_folder(args.source)
    passages, sentences = load_real(folder)
    questions = embed_questions(folder, args.questions, 0)
    if questions is None:
        raise SystemExit(f"bench_ann: --real needs {args.questions} and {folder}/encoder")
    k = RetrievalSettings().dense_candidates
    report: dict[str, Any] = {"mode": "real", "source": str(folder), "k_searched": k,
                              "questions": len(questions),
                              "search_threads": dense_mod.SEARCH_THREADS, "bases": []}
    bases = {"passages": passages,
             "passages+sentences": unique_rows(np.concatenate([passages, sentences]))}
    for name, base in bases.items():
        log(f"real base '{name}': {len(base)} vectors")
        truth = exact_topk(base, questions, K_RECALL)
        flat = DenseIndex.build(base, "flat")
        times, res = time_queries(searcher(flat, k), questions)
        flat_row = {**pct(times), "recall@10_check": recall(res, truth)}
        del flat
        approx, build = build_measured(base, dense_mod.APPROX_KIND)
        measured = measure_approx(approx, {"questions": questions}, {"questions": truth}, k,
                                  len(questions))
        row = {"base": name, "n": len(base), "flat": flat_row,
               "approx": {**build, **measured["product"], "sweep": measured["sweep"]}}
        log(f"{name}: {row['approx']}")
        report["bases"].append(row)
        if name == "passages" and not args.no_e2e:
            report["end_to_end"] = end_to_end(args.source, approx, args.questions)
        del approx
    return report


def end_to_end(root: Path, approx: DenseIndex, questions_path: Path) -> dict[str, Any]:
    """``CrampQA.ask(q, k=10)`` for every question with the index's own dense index and
    with ``approx`` swapped in: how often the answers differ, and warm latency of both
    (two rounds, alternating)."""
    from crampqa import CrampQA

    qa = CrampQA.open(None, root, auto_build=False)
    if qa.retriever.dense.size != approx.size:
        return {"skipped": "the index changed since its vectors were read"}
    own = qa.retriever.dense
    texts = [str(json.loads(line)["text"]) for line in
             questions_path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def run(index: DenseIndex) -> tuple[list[list[str]], list[float]]:
        qa.retriever.dense = index
        for text in texts[:20]:
            qa.ask(text, k=3)
        answers, times = [], []
        for text in texts:
            t0 = time.perf_counter()
            answer = qa.ask(text, k=10)
            times.append((time.perf_counter() - t0) * 1000)
            answers.append([p.source_id for p in answer.passages])
        return answers, times

    rounds = []
    for _ in range(2):
        a, ta = run(own)
        b, tb = run(approx)
        rounds.append({
            "identical_top10": sum(x == y for x, y in zip(a, b, strict=True)),
            "same_top1": sum(x[:1] == y[:1] for x, y in zip(a, b, strict=True)),
            "mean_overlap": round(float(np.mean([len(set(x) & set(y)) / max(len(x), 1)
                                                 for x, y in zip(a, b, strict=True)])), 4),
            "own": {"type": own.kind, **pct(ta)}, "approx": {"type": approx.kind, **pct(tb)}})
        log(f"end to end: {rounds[-1]}")
    qa.retriever.dense = own
    return {"questions": len(texts), "rounds": rounds}


# ---------------------------------------------------------------------------- output


def machine() -> dict[str, Any]:
    """What the figures were taken on."""
    import faiss

    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "faiss": faiss.__version__, "numpy": np.__version__,
            "faiss_default_threads": faiss.omp_get_max_threads()}


def print_report(report: dict[str, Any]) -> None:
    """The report as indented JSON on stdout."""
    print(json.dumps(report, indent=2))


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--real", action="store_true", help="recall on real vectors and questions")
    p.add_argument("--source", type=Path, default=default_source(),
                   help="index folder whose real vectors seed the data")
    p.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    p.add_argument("--no-questions", action="store_true", help="held-out queries only")
    p.add_argument("--no-e2e", action="store_true",
                   help="--real: skip the end-to-end CrampQA.ask comparison")
    p.add_argument("--n", type=int, default=1_000_000, help="synthetic base size")
    p.add_argument("--queries", type=int, default=1000, help="queries per query set")
    p.add_argument("--flat-queries", type=int, default=300,
                   help="queries per set timed one at a time on flat indexes")
    p.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",") if x],
                   default=[10_000, 25_000, 50_000, 75_000, 100_000, 200_000, 500_000],
                   help="comma-separated sizes for the flat latency scan ('' = none)")
    p.add_argument("--neighbours", type=int, default=8)
    p.add_argument("--eta", type=float, default=0.5, help="noise scale (x local spacing)")
    p.add_argument("--gaussian-control", action="store_true",
                   help="also report the structure of i.i.d. Gaussian unit vectors")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the report to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark."""
    args = parse(argv)
    started = time.time()
    info = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "loadavg_before": loadavg(), "machine": machine()}
    result = real(args) if args.real else synthetic(args)
    report = {**info, **result, "loadavg_after": loadavg(),
              "wall_s": round(time.time() - started, 1)}
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
