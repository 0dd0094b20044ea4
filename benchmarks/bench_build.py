"""Index build throughput: crampqa against the naive pipeline, side by side on one subset.

The naive pipeline is the design card's: every document's title and text cut into
100-word windows with a stride of 80 words, embedded by sentence-transformers
all-MiniLM-L6-v2 (batch 32), added to a flat FAISS index (``IndexFlatIP``), all in one
process from start to finish. crampqa's build is ``CrampQA.build(..., rebuild=True)``
on the same documents (``--docs`` documents spread evenly over a BEIR corpus, written
as a BEIR folder of their own). Each build is a fresh process; rounds alternate the
pipelines so both see the same load. Reported per build: wall time, documents/s, texts
embedded per document (counted inside the process, at the encoder), peak resident
memory (``os.wait4``) and, for crampqa, the wall time of each build stage::

    .venv/bin/python benchmarks/bench_build.py --docs 2000 --rounds 1
    # the same, with another checkout's crampqa built beside it (before/after a change)
    .venv/bin/python benchmarks/bench_build.py --docs 200 --also /tmp/old-checkout

crampqa's query encoder (the ONNX export of the model) is taken from the export cache
(``$CRAMPQA_ENCODER_CACHE``, here a folder under ``--work``) after a first build has
made it, as on any machine after its first build; ``--cold-export`` empties it before
every crampqa build.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MEDQUAD = REPO.parent / "shared" / "datasets" / "medquad"
WINDOW, STRIDE = 100, 80


def make_subset(source: Path, target: Path, docs: int) -> Path:
    """``docs`` documents of ``source``'s BEIR corpus spread evenly over it (every
    ``n // docs``-th, so that the subset's lengths are the corpus's), as a BEIR folder."""
    folder = target / f"corpus-{docs}"
    corpus = folder / "corpus.jsonl.gz"
    if corpus.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if (source / "corpus.jsonl.gz").is_file() else open
    name = "corpus.jsonl.gz" if opener is gzip.open else "corpus.jsonl"
    with opener(source / name, "rt", encoding="utf-8") as handle:  # type: ignore[operator]
        lines = [line if line.endswith("\n") else line + "\n" for line in handle
                 if line.strip()]
    step = max(1, len(lines) // max(1, docs))
    tmp = folder / ".corpus.jsonl.gz.tmp"
    with gzip.open(tmp, "wt", encoding="utf-8") as out:
        out.writelines(lines[::step][:docs])
    os.replace(tmp, corpus)
    return folder


def windows(text: str) -> list[str]:
    """100-word windows with a stride of 80 words (the last one may be shorter)."""
    words = text.split()
    out = []
    for start in range(0, max(len(words), 1), STRIDE):
        out.append(" ".join(words[start : start + WINDOW]))
        if start + WINDOW >= len(words):
            break
    return out


def run_naive(corpus: Path) -> dict[str, Any]:
    """The naive pipeline, in this process (a child of the benchmark)."""
    started = time.perf_counter()
    import faiss
    from sentence_transformers import SentenceTransformer

    from crampqa.embedding import model_path

    texts: list[str] = []
    docs = 0
    with gzip.open(corpus / "corpus.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            texts.extend(windows(f"{doc.get('title', '')}\n\n{doc['text']}"))
            docs += 1
    model = SentenceTransformer(str(model_path()), device="cpu")
    vectors = model.encode(texts, batch_size=32, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return {"documents": docs, "texts": len(texts), "vectors": int(index.ntotal),
            "seconds_inside": time.perf_counter() - started, "stages": {}}


def run_crampqa(corpus: Path, index: Path) -> dict[str, Any]:
    """crampqa's build, in this process (a child of the benchmark)."""
    started = time.perf_counter()
    import crampqa.embedding as embedding
    import crampqa.onnx_encoder as onnx_encoder
    from crampqa import CrampQA

    counted = {"texts": 0}
    for cls in (embedding.SentenceTransformerEmbedder, onnx_encoder.OnnxEncoder):
        original = cls.encode

        def counting(self: Any, texts: Any, *args: Any, _original: Any = original,
                     **kwargs: Any) -> Any:
            counted["texts"] += len(texts)
            return _original(self, texts, *args, **kwargs)

        cls.encode = counting  # type: ignore[method-assign]
    stages: dict[str, float] = {}
    last = {"stage": "start", "at": time.perf_counter()}

    def progress(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if stage != last["stage"]:
            stages[str(last["stage"])] = stages.get(str(last["stage"]), 0.0) + \
                now - float(last["at"])
            last["stage"], last["at"] = stage, now

    summary = CrampQA.build(corpus, index, rebuild=True, progress=progress)
    now = time.perf_counter()
    stages[str(last["stage"])] = stages.get(str(last["stage"]), 0.0) + now - float(last["at"])
    return {"documents": summary.documents, "texts": counted["texts"],
            "passages": summary.passages, "seconds_inside": now - started,
            "stages": {k: round(v, 2) for k, v in stages.items()}}


def child(kind: str, corpus: Path, index: Path, tree: Path | None, cold: bool,
          cache: Path) -> dict[str, Any]:
    """Run one build in a fresh process; wall time and peak RSS measured from outside."""
    env = dict(os.environ, CRAMPQA_ENCODER_CACHE=str(cache))
    env["PYTHONPATH"] = str(tree or REPO) + os.pathsep + env.get("PYTHONPATH", "")
    if cold and cache.exists():
        shutil.rmtree(cache)
    shutil.rmtree(index, ignore_errors=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind,
               "--corpus", str(corpus), "--index", str(index)]
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out = proc.stdout.read() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{kind} build failed (exit {os.waitstatus_to_exitcode(status)})")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result.update(pipeline=kind if tree is None else f"{kind} ({tree})", seconds=wall,
                  peak_rss_mb=usage.ru_maxrss / 1024,
                  docs_per_s=result["documents"] / wall,
                  texts_per_doc=result["texts"] / max(result["documents"], 1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--source", type=Path, default=MEDQUAD, help="a BEIR folder")
    parser.add_argument("--work", type=Path, default=Path("/tmp/crampqa-bench-build"))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--also", type=Path, action="append", default=[],
                        help="another checkout whose crampqa build runs beside (repeatable)")
    parser.add_argument("--cold-export", action="store_true",
                        help="no cached ONNX export: every crampqa build exports the model")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", choices=("naive", "crampqa"), help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = run_naive(args.corpus) if args.child == "naive" else \
            run_crampqa(args.corpus, args.index)
        print(json.dumps(result))
        return
    corpus = make_subset(args.source, args.work, args.docs)
    cache = args.work / "encoder-cache"
    if not args.cold_export and not (cache.exists() and any(cache.iterdir())):
        print("first build: making the ONNX export for the cache", file=sys.stderr)
        child("crampqa", make_subset(args.source, args.work, 5), args.work / "warm-index",
              None, False, cache)
    plan: list[tuple[str, Path | None]] = [] if args.skip_naive else [("naive", None)]
    plan += [("crampqa", None)] + [("crampqa", tree) for tree in args.also]
    results: list[dict[str, Any]] = []
    for r in range(args.rounds):
        for kind, tree in (plan if r % 2 == 0 else plan[::-1]):
            res = child(kind, corpus, args.work / f"index-{len(results)}", tree,
                        args.cold_export, cache)
            res["round"] = r
            results.append(res)
            print(f"round {r} {res['pipeline']}: {res['seconds']:.1f} s, "
                  f"{res['docs_per_s']:.2f} docs/s, {res['texts_per_doc']:.2f} texts/doc, "
                  f"peak {res['peak_rss_mb']:.0f} MB, stages {res['stages']}", flush=True)
    print(f"\n{args.docs} documents of {args.source}, {args.rounds} round(s); load average "
          f"{os.getloadavg()[0]:.1f} at the end")
    print("| pipeline | wall s (median) | documents/s | texts embedded/document | peak RSS MB |")
    print("| --- | --- | --- | --- | --- |")
    for name in dict.fromkeys(r["pipeline"] for r in results):
        rows = [r for r in results if r["pipeline"] == name]
        wall = statistics.median(r["seconds"] for r in rows)
        print(f"| {name} | {wall:.1f} | {rows[0]['documents'] / wall:.2f} | "
              f"{rows[0]['texts_per_doc']:.2f} | "
              f"{max(r['peak_rss_mb'] for r in rows):.0f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
