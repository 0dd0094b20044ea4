"""Choose the confidence from which a first passage is called a "strong match".

    crampqa eval eval/dev.jsonl --json > dev.json
    crampqa eval eval/dev2.jsonl --json > dev2.json
    python benchmarks/calibrate_strength.py dev.json dev2.json [--target 0.9]

Reads the per-question records of `crampqa eval --json` (default configuration) and, for
every answered question, whether its first passage answers it (an answerable question
whose first relevant passage is at rank 1). Prints, for each candidate threshold, how many
first passages would be called strong and the share of them that answer, then the lowest
threshold whose share is at least ``--target``, and the share of the remaining answered
first passages (partial) that answer. Run it on development sets only: a threshold chosen
on a held-out set would make that set's figures in-sample.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def records(paths: list[Path]) -> list[tuple[float, bool]]:
    """(confidence, first passage answers) for every answered question."""
    out = []
    for path in paths:
        config = json.loads(path.read_text(encoding="utf-8"))["configs"]["default"]
        for r in config["records"]:
            if r["abstained"]:
                continue
            answers = bool(r["answerable"]) and r.get("first_relevant_rank") == 1
            out.append((float(r["confidence"]), answers))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--target", type=float, default=0.9)
    args = parser.parse_args()
    rows = sorted(records(args.results))
    print(f"{len(rows)} answered questions; first passage answers: "
          f"{sum(a for _, a in rows)}/{len(rows)}")
    print("threshold  strong  answer  share")
    chosen = None
    for i, (conf, _) in enumerate(rows):
        strong = rows[i:]
        hits = sum(a for _, a in strong)
        share = hits / len(strong)
        if i % 5 == 0 or (chosen is None and share >= args.target):
            print(f"{conf:9.3f}  {len(strong):6d}  {hits:6d}  {share:.3f}")
        if chosen is None and share >= args.target and len(strong) >= 10:
            chosen = conf
    if chosen is None:
        print(f"no threshold reaches {args.target}")
        return
    strong = [a for c, a in rows if c >= chosen]
    partial = [a for c, a in rows if c < chosen]
    print(f"chosen: strong from confidence {chosen:.3f}: {sum(strong)}/{len(strong)} "
          f"({sum(strong) / len(strong):.3f}) of strong first passages answer; partial: "
          f"{sum(partial)}/{len(partial)} "
          f"({(sum(partial) / len(partial)) if partial else 0:.3f})")


if __name__ == "__main__":
    main()
