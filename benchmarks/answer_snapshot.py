"""Answer snapshots: record what crampqa answers, then check a change left it byte-identical.

A refactoring must not change a single answer. This script writes every answer of a set of
questions (``CrampQA.ask(..., k=10).to_dict()`` under each evaluation configuration) and
of a BEIR subset (``CrampQA.rank_documents``) as JSON lines, one file per input, so that
two snapshots can be compared byte for byte::

    # a deterministic BEIR subset small enough to index in minutes (MedQuAD: ~1,600 docs)
    .venv/bin/python benchmarks/answer_snapshot.py subset ../shared/datasets/medquad \
        /tmp/snap/medquad-subset --queries 100 --others 1500
    # before the change (fresh indexes, so the build is covered too)
    .venv/bin/python benchmarks/answer_snapshot.py record /tmp/snap/before \
        eval/questions.jsonl eval/heldout.jsonl eval/dev.jsonl --index /tmp/snap/idx-before \
        --beir /tmp/snap/medquad-subset --beir-index /tmp/snap/beir-before
    # after the change: the same with .../after and new index folders, then
    .venv/bin/python benchmarks/answer_snapshot.py compare /tmp/snap/before /tmp/snap/after

``compare`` exits 1 and names the first differing line of each file when anything differs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: Extra configurations beyond the evaluation's (crampqa.evaluation.runner.CONFIGS).
EXTRA_CONFIGS: dict[str, dict[str, Any]] = {"rrf": {"fusion": "rrf"}}


def _lines(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:  # type: ignore[operator]
        return [json.loads(line) for line in handle if line.strip()]


def subset(source: Path, target: Path, queries: int, others: int) -> None:
    """The first ``queries`` queries of the dev split, their relevant documents and every
    ``step``-th other document (``others`` of them), in corpus order."""
    target.mkdir(parents=True, exist_ok=True)
    (target / "qrels").mkdir(exist_ok=True)
    all_queries = _lines(source / "queries.jsonl")
    qrels_lines = (source / "qrels" / "dev.tsv").read_text(encoding="utf-8").splitlines()
    header, rows = qrels_lines[0], [line.split("\t") for line in qrels_lines[1:] if line]
    judged: dict[str, list[list[str]]] = {}
    for row in rows:
        judged.setdefault(row[0], []).append(row)
    chosen = [q for q in all_queries if q["_id"] in judged][:queries]
    ids = {q["_id"] for q in chosen}
    relevant = {row[1] for qid in ids for row in judged[qid]}
    corpus = _lines(source / "corpus.jsonl.gz")
    rest = [d for d in corpus if d["_id"] not in relevant]
    step = max(1, len(rest) // max(1, others))
    keep = relevant | {d["_id"] for d in rest[::step][:others]}
    with gzip.open(target / "corpus.jsonl.gz", "wt", encoding="utf-8") as handle:
        for doc in corpus:
            if doc["_id"] in keep:
                handle.write(json.dumps(doc, ensure_ascii=False) + "\n")
    with (target / "queries.jsonl").open("w", encoding="utf-8") as handle:
        for q in chosen:
            handle.write(json.dumps(q, ensure_ascii=False) + "\n")
    with (target / "qrels" / "dev.tsv").open("w", encoding="utf-8") as handle:
        handle.write(header + "\n")
        for qid in (q["_id"] for q in chosen):
            for row in judged[qid]:
                handle.write("\t".join(row) + "\n")
    print(f"{len(chosen)} queries, {len(keep)} documents -> {target}")


def record(out: Path, files: list[Path], corpus: Path | None, index: Path,
           beir: Path | None, beir_index: Path | None, k: int) -> None:
    """Write one JSONL snapshot per question file (and one for the BEIR subset)."""
    from crampqa import CrampQA
    from crampqa.evaluation.runner import CONFIGS

    configs = {**CONFIGS, **EXTRA_CONFIGS}
    out.mkdir(parents=True, exist_ok=True)
    if files:
        qa = CrampQA.open(corpus or REPO / "corpus", index)
        for path in files:
            with (out / f"{path.stem}.jsonl").open("w", encoding="utf-8") as handle:
                for row in _lines(path):
                    if "question" not in row:  # a file's header line (e.g. "tuning")
                        continue
                    for name, overrides in configs.items():
                        if "naive" in overrides:  # document-level sets only
                            continue
                        answer = qa.ask(row["question"], k=k, **overrides).to_dict()
                        handle.write(json.dumps({"id": row["id"], "config": name,
                                                 "answer": answer}, ensure_ascii=False) + "\n")
            print(f"recorded {path}")
    if beir is not None:
        qa = CrampQA.open(beir, beir_index or out / "beir-index")
        with (out / "beir.jsonl").open("w", encoding="utf-8") as handle:
            for row in _lines(beir / "queries.jsonl"):
                for name, overrides in configs.items():
                    ranked = qa.rank_documents(row["text"], k, **overrides)
                    handle.write(json.dumps({"id": row["_id"], "config": name,
                                             "ranked": ranked}) + "\n")
        print(f"recorded {beir}")


def compare(before: Path, after: Path) -> int:
    """0 when every snapshot file of ``before`` is byte-identical in ``after``."""
    failed = 0
    for old in sorted(before.glob("*.jsonl")):
        new = after / old.name
        if not new.is_file():
            print(f"{old.name}: missing in {after}")
            failed += 1
            continue
        a, b = old.read_bytes(), new.read_bytes()
        if a == b:
            print(f"{old.name}: identical ({len(a.splitlines())} answers, {len(a)} bytes)")
            continue
        failed += 1
        for i, (x, y) in enumerate(zip(a.splitlines(), b.splitlines(), strict=False), 1):
            if x != y:
                print(f"{old.name}: differs first at line {i}")
                break
        else:
            print(f"{old.name}: differs in length")
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("subset", help="make a small deterministic BEIR subset")
    s.add_argument("source", type=Path)
    s.add_argument("target", type=Path)
    s.add_argument("--queries", type=int, default=100)
    s.add_argument("--others", type=int, default=1500)
    r = sub.add_parser("record", help="write answer snapshots")
    r.add_argument("out", type=Path)
    r.add_argument("files", type=Path, nargs="*")
    r.add_argument("--corpus", type=Path)
    r.add_argument("--index", type=Path, required=True)
    r.add_argument("--beir", type=Path)
    r.add_argument("--beir-index", type=Path)
    r.add_argument("-k", type=int, default=10)
    c = sub.add_parser("compare", help="compare two snapshot folders byte for byte")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "subset":
        subset(args.source, args.target, args.queries, args.others)
    elif args.command == "record":
        record(args.out, args.files, args.corpus, args.index, args.beir, args.beir_index,
               args.k)
    else:
        sys.exit(compare(args.before, args.after))


if __name__ == "__main__":
    main()
