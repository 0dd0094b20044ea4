"""Two answer scorers side by side on every question set: the shipped one and a new one.

    .venv/bin/python benchmarks/compare_scorers.py --old DIR --new DIR \\
        [--new-set scorer_weight=0.3 --new-set scorer_threshold=0.4] \\
        eval/questions.jsonl eval/dev.jsonl eval/dev2.jsonl eval/heldout.jsonl eval/blind.jsonl

Each scorer folder holds ``model.onnx``, ``tokenizer.json`` and ``scorer.json`` (hashes
checked). Both are run through ``CrampQA.ask`` in the default configuration on the default
index (``--index``), each with its own retrieval settings: the index's, changed by
``--old-set``/``--new-set NAME=VALUE``. Printed per set and scorer: hit@1, hit@3, MRR@10
(answerable questions), near-topic and off-topic questions abstained, answerable questions
wrongly abstained, and warm latency p50/p95. A set whose first line declares it a tuning
set is marked "in-sample". ``--json FILE`` keeps every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from crampqa import CrampQA
from crampqa.config import RetrievalSettings
from crampqa.evaluation.datasets import contains_evidence, load_questions, question_set_header
from crampqa.retrieval import with_overrides
from crampqa.scorer import PassageScorer

ROOT = Path(__file__).resolve().parents[1]


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _overrides(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        out[name.strip()] = _value(value.strip())
    return out


def _share(hits: int, total: int) -> str:
    return f"{hits / total:.3f} ({hits}/{total})" if total else "–"


def measure(qa: CrampQA, path: Path, k: int = 10) -> dict[str, Any]:
    """Ask every question of ``path`` and count what the issue's targets count."""
    questions = load_questions(path)
    qa.ask(questions[0].question, k=k)  # warm-up
    first = top3 = answerable = 0
    rr = 0.0
    near = near_abst = off = off_abst = wrong_abst = 0
    latencies = []
    for q in questions:
        start = time.perf_counter()
        answer = qa.ask(q.question, k=k)
        latencies.append(time.perf_counter() - start)
        tags = set(q.tags)
        if q.answerable:
            answerable += 1
            wrong_abst += answer.abstained
            ranks = [p.rank for p in answer.passages if contains_evidence(p.text, q.evidence)]
            rank = min(ranks) if ranks else None
            first += rank == 1
            top3 += rank is not None and rank <= 3
            rr += 1.0 / rank if rank else 0.0
        elif "off-topic" in tags:
            off += 1
            off_abst += answer.abstained
        else:
            near += 1
            near_abst += answer.abstained
    latencies.sort()
    return {
        "in_sample": bool(question_set_header(path).get("tuning")),
        "hit@1": _share(first, answerable), "hit@3": _share(top3, answerable),
        "mrr@10": round(rr / answerable, 3) if answerable else None,
        "near-topic abstained": _share(near_abst, near),
        "off-topic abstained": _share(off_abst, off),
        "answerable wrongly abstained": _share(wrong_abst, answerable),
        "p50 ms": round(statistics.median(latencies) * 1000, 1),
        "p95 ms": round(latencies[int(0.95 * (len(latencies) - 1))] * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", type=Path, nargs="+")
    parser.add_argument("--old", type=Path, default=ROOT / "crampqa" / "models" / "scorer")
    parser.add_argument("--new", type=Path, required=True)
    parser.add_argument("--old-set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--new-set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    parser.add_argument("--index", type=Path, default=ROOT / "indexes" / "default")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    results: dict[str, dict[str, Any]] = {}
    for label, folder, sets in (("old", args.old, args.old_set), ("new", args.new, args.new_set)):
        qa = CrampQA.open(args.corpus, args.index)
        scorer = PassageScorer.load(folder)
        qa.retriever._scorer = scorer
        settings = with_overrides(qa.retrieval_settings, **_overrides(sets))
        # this run's settings in place of the index's stored ones (for this engine only)
        def tuned(self: CrampQA, s: RetrievalSettings = settings) -> RetrievalSettings:
            return s

        qa.__class__ = type("Tuned", (CrampQA,), {"retrieval_settings": property(tuned)})
        for path in args.sets:
            row = measure(qa, path)
            row["scorer"] = scorer.name
            results.setdefault(path.name, {})[label] = row
            print(path.name, label, json.dumps(row), flush=True)

    columns = ["hit@1", "hit@3", "mrr@10", "near-topic abstained", "off-topic abstained",
               "answerable wrongly abstained", "p50 ms", "p95 ms"]
    print("\n| set | scorer | " + " | ".join(columns) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in columns) + " |")
    for name, rows in results.items():
        for label, row in rows.items():
            set_name = name + (" (in-sample)" if row["in_sample"] else "")
            print(f"| {set_name} | {label}: {row['scorer']} | "
                  + " | ".join(str(row[c]) for c in columns) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
