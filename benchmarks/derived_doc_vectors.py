"""Could a build skip embedding whole documents? Document vectors derived from passage
vectors, against the embedded ones, on MedQuAD queries.

A build embeds each document's title + text (truncated by the model) once more, besides its
passages: for MedQuAD about a quarter of the tokens a build embeds. This measures what
document ranking (``crampqa eval`` default configuration, and ``naive``) would lose if the
document vector were derived from vectors the build already has:

* ``first``: the vector of the document's first passage;
* ``mean``: the normalised mean of its passage vectors;
* ``first2``: the normalised mean of its first two passages.

It needs an index of a MedQuAD subset whose document vectors were embedded (document-level
version 1, crampqa before the change this measured; ``benchmarks/bench_build.py`` leaves
one in ``--work``/index-1), whose ``stored`` row is then "embedded"; on a newer index
``stored`` is ``first``. It evaluates the MedQuAD dev queries whose judged documents are
all in that subset::

    .venv/bin/python benchmarks/derived_doc_vectors.py \\
        --subset /tmp/crampqa-bench-build/corpus-2000 --index /tmp/crampqa-bench-build/index-1
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from crampqa import CrampQA
from crampqa.evaluation.runner import evaluate_beir, prepare_beir

REPO = Path(__file__).resolve().parents[1]
MEDQUAD = REPO.parent / "shared" / "datasets" / "medquad"


def subset_folder(subset: Path, source: Path, target: Path) -> int:
    """A BEIR folder of ``subset``'s corpus with the queries of ``source`` whose judged
    documents are all in it; the number of queries."""
    with gzip.open(subset / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        ids = {json.loads(line)["_id"] for line in fh if line.strip()}
    qrels: dict[str, list[str]] = {}
    lines = (source / "qrels" / "dev.tsv").read_text(encoding="utf-8").splitlines()
    for line in lines[1:]:
        qid, doc, score = line.split("\t")
        qrels.setdefault(qid, []).append(f"{qid}\t{doc}\t{score}")
    keep = {qid for qid, rows in qrels.items()
            if all(row.split("\t")[1] in ids for row in rows)}
    (target / "qrels").mkdir(parents=True)
    (target / "qrels" / "dev.tsv").write_text(
        lines[0] + "\n" + "".join(r + "\n" for q in sorted(keep) for r in qrels[q]),
        encoding="utf-8")
    with (source / "queries.jsonl").open(encoding="utf-8") as fh, \
            (target / "queries.jsonl").open("w", encoding="utf-8") as out:
        for line in fh:
            if line.strip() and json.loads(line)["_id"] in keep:
                out.write(line)
    shutil.copyfile(subset / "corpus.jsonl.gz", target / "corpus.jsonl.gz")
    return len(keep)


def derived(qa: CrampQA, how: str) -> np.ndarray:
    """Document vectors derived from the index's passage vectors."""
    docs = np.asarray(qa.data.passages.docs)
    vectors = np.asarray(qa.data.embeddings, dtype=np.float32)
    out = np.zeros((len(qa.data.documents), vectors.shape[1]), dtype=np.float32)
    for d in range(len(qa.data.documents)):
        rows = np.flatnonzero(docs == d)
        if how == "first":
            rows = rows[:1]
        elif how == "first2":
            rows = rows[:2]
        if rows.size:
            v = vectors[rows].mean(axis=0)
            out[d] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", type=Path, required=True, help="BEIR folder of a subset")
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--source", type=Path, default=MEDQUAD)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "subset"
        n = subset_folder(args.subset, args.source, folder)
        beir = prepare_beir(folder)
        qa = CrampQA.open(folder, args.index, auto_build=False)
        level = qa.document_level
        assert level is not None, "the index has no document vectors"
        embedded = np.array(level.vectors)
        print(f"{n} queries with every judged document in the subset")
        for how in ("stored", "first", "first2", "mean"):
            level.vectors = embedded if how == "stored" else derived(qa, how)
            result = evaluate_beir(qa, beir, configs=["default", "naive"])
            cells = {c.name: c.metrics for c in result.configs}
            print(f"{how:9} default nDCG@10 {cells['default']['nDCG@10']:.4f} "
                  f"hit@1 {cells['default']['hit@1']:.4f} | naive nDCG@10 "
                  f"{cells['naive']['nDCG@10']:.4f}", flush=True)


if __name__ == "__main__":
    main()
