"""Every question set under ``eval/`` through ``crampqa eval``'s runner, for benchmarks that
compare two variants of an index on all of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crampqa import CrampQA
from crampqa.config import PROJECT_ROOT
from crampqa.evaluation.datasets import load_questions, question_set_header
from crampqa.evaluation.runner import evaluate_questions

SETS = ["questions.jsonl", "dev.jsonl", "dev2.jsonl", "heldout.jsonl", "blind.jsonl",
        "blind2.jsonl"]
MEASURES = ("hit@1", "hit@3", "MRR@10", "correct_abstention", "false_abstention")


def label(name: str) -> str:
    """The set's name, marked "(tuning)" when its header declares it a tuning set: only
    those may decide whether a variant is adopted."""
    tuning = question_set_header(PROJECT_ROOT / "eval" / name).get("tuning")
    return name.removesuffix(".jsonl") + (" (tuning)" if tuning else "")


def measure_sets(qa: CrampQA, configs: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """:data:`MEASURES` per set and configuration (k = 10)."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for name in SETS:
        path: Path = PROJECT_ROOT / "eval" / name
        result = evaluate_questions(qa, load_questions(path), configs, k=10, source=str(path))
        table[name] = {}
        for config in configs:
            r = result.config(config)
            ab: dict[str, Any] = r.abstention or {}
            table[name][config] = {
                "hit@1": r.metrics["hit@1"], "hit@3": r.metrics["hit@3"],
                "MRR@10": r.metrics["MRR@10"],
                "correct_abstention": ab.get("correct_abstention_rate", float("nan")),
                "false_abstention": ab.get("false_abstention_rate", float("nan")),
            }
    return table
