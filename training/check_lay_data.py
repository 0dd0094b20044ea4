"""Check the team-written lay articles and their questions (training/data/lay/).

Each article ``articles/<slug>.md`` has a questions file ``questions/<slug>.jsonl``. An
answerable question (label 1) names its ``evidence``: an exact substring of the article that
answers it. A near-topic question (label 0) names what the article lacks in ``missing``.

    python training/check_lay_data.py [SLUG ...]

Prints one line per problem and a summary; exits 1 when any problem is found.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

LAY = Path(__file__).resolve().parent / "data" / "lay"
ANSWERABLE_KINDS = {"lay", "typo", "paraphrase", "why-cause", "table-row", "list-item"}
NEAR_TOPIC_KINDS = {
    "amount-for-group",
    "lab-value",
    "child-dose",
    "drug-interaction",
    "form-comparison",
    "unmentioned-remedy",
    "serious-symptom",
}
MIN_ANSWERABLE = 14
MIN_NEAR_TOPIC = 8


def check(slug: str) -> list[str]:
    """Return the problems of one article and its questions."""
    problems: list[str] = []
    article_path = LAY / "articles" / f"{slug}.md"
    questions_path = LAY / "questions" / f"{slug}.jsonl"
    if not questions_path.exists():
        return [f"{slug}: no questions file"]
    text = article_path.read_text(encoding="utf-8")
    if not text.startswith("# "):
        problems.append(f"{slug}: the article must start with '# Title'")
    if not 5000 <= len(text) <= 14000:
        problems.append(f"{slug}: {len(text)} characters (5,000-14,000 expected)")
    kinds: Counter[str] = Counter()
    for number, line in enumerate(questions_path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{slug}.jsonl:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(f"{where}: not JSON ({error})")
            continue
        question, label, kind = row.get("question"), row.get("label"), row.get("kind")
        if not isinstance(question, str) or not question.strip():
            problems.append(f"{where}: no question")
        if label == 1:
            if kind not in ANSWERABLE_KINDS:
                problems.append(f"{where}: kind {kind!r} is not one of {sorted(ANSWERABLE_KINDS)}")
            evidence = row.get("evidence")
            if not isinstance(evidence, str) or len(evidence) < 15:
                problems.append(f"{where}: evidence missing or shorter than 15 characters")
            elif evidence not in text:
                problems.append(f"{where}: evidence is not an exact substring of the article")
        elif label == 0:
            if kind not in NEAR_TOPIC_KINDS:
                problems.append(f"{where}: kind {kind!r} is not one of {sorted(NEAR_TOPIC_KINDS)}")
            if not isinstance(row.get("missing"), str) or not row["missing"].strip():
                problems.append(f"{where}: 'missing' must say what the article lacks")
        else:
            problems.append(f"{where}: label must be 1 or 0")
        kinds[f"{label}:{kind}"] += 1
    answerable = sum(n for k, n in kinds.items() if k.startswith("1:"))
    near = sum(n for k, n in kinds.items() if k.startswith("0:"))
    if answerable < MIN_ANSWERABLE:
        problems.append(f"{slug}: {answerable} answerable questions (at least {MIN_ANSWERABLE})")
    if near < MIN_NEAR_TOPIC:
        problems.append(f"{slug}: {near} near-topic questions (at least {MIN_NEAR_TOPIC})")
    return problems


def main(argv: list[str]) -> int:
    slugs = argv or sorted(p.stem for p in (LAY / "articles").glob("*.md"))
    problems = [problem for slug in slugs for problem in check(slug)]
    for problem in problems:
        print(problem)
    print(f"{len(slugs)} articles checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
