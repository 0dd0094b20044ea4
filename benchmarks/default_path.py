"""The default install and query path of two revisions, side by side.

Run from the repository root with the project's virtual environment::

    .venv/bin/python benchmarks/default_path.py                       # before vs after Ray/Milvus
    .venv/bin/python benchmarks/default_path.py --base 350e9a8 --head HEAD --json

It answers "did this change make the default install bigger or the default query path
slower?" for two git revisions (default: the last commit before the Ray build and the
Milvus backend were added, and the commit that merged the Milvus backend). Each revision
is checked out into a temporary worktree and run with this virtual environment's
packages (the editable install of this checkout is bypassed, so each side imports its
own ``crampqa``). In one run it:

1. compares the **default install**: ``[project].dependencies`` of both ``pyproject.toml``
   files (the default install resolves the same packages when they are equal), and the
   bytes of the ``crampqa`` package itself (its ``.py`` files and package data);
2. builds the **default index** of ``corpus/`` with each revision into a temporary folder
   and compares its size and its embeddings (SHA-256);
3. times **cold** ``crampqa ask "<question>" --json`` processes, alternating revision by
   revision every round (and swapping which goes first), and records which optional
   packages a cold ask imported (``ray``, ``pymilvus`` must not be among them);
4. times **warm** ``CrampQA.ask`` over every question in ``eval/questions.jsonl``, one
   process per revision per round, alternating; medians of the per-round p50 and p95;
5. checks the **answers** are the same: each question's top-3 passage IDs, abstentions
   and confidences (rounded to 1e-6) under both revisions.

Timings on a shared machine are noisy: read the ratios of the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "corpus"
QUESTIONS = REPO / "eval" / "questions.jsonl"
#: The last commit before the Ray build, and the merge of the Milvus backend.
BEFORE_RAY_MILVUS = "350e9a8"
AFTER_RAY_MILVUS = "2972d5e"
DEFAULT_QUESTION = "why do my calves cramp at night"
OPTIONAL = ("ray", "pymilvus", "milvus_lite", "pyarrow", "grpc")

#: Runs crampqa's CLI from the worktree given first, not from this checkout's editable
#: install (whose import hook would otherwise win over ``sys.path``).
RUNNER = textwrap.dedent(
    """
    import json, os, sys
    tree = sys.argv.pop(1)
    sys.meta_path[:] = [f for f in sys.meta_path
                        if not getattr(f, "__module__", "").startswith("__editable__")]
    sys.path.insert(0, tree)
    report = os.environ.pop("DEFAULT_PATH_MODULES", None)
    import crampqa
    assert crampqa.__file__.startswith(tree), crampqa.__file__
    from crampqa.cli import main
    try:
        main()
    finally:
        if report:
            with open(report, "w") as out:
                json.dump(sorted(m.split(".")[0] for m in sys.modules), out)
    """
)

#: Warm asks in one process: (question, seconds, top-3 IDs, abstained, confidence).
WARM = textwrap.dedent(
    """
    import json, sys, time
    tree, index, questions, warmup, passes = sys.argv[1:6]
    sys.meta_path[:] = [f for f in sys.meta_path
                        if not getattr(f, "__module__", "").startswith("__editable__")]
    sys.path.insert(0, tree)
    import crampqa
    assert crampqa.__file__.startswith(tree), crampqa.__file__
    qa = crampqa.CrampQA.open(index_dir=index, auto_build=False)
    rows = [json.loads(line) for line in open(questions) if line.strip()]
    texts = [row["question"] for row in rows if "question" in row]
    for text in texts[: int(warmup)]:
        qa.ask(text)
    times, answers = [], {}
    for _ in range(int(passes)):
        for text in texts:
            start = time.perf_counter()
            answer = qa.ask(text)
            times.append(time.perf_counter() - start)
            answers[text] = {
                "ids": [p.source_id for p in answer.passages],
                "abstained": answer.abstained,
                "confidence": round(float(answer.confidence), 6),
            }
    print(json.dumps({"times": times, "answers": answers}))
    """
)


def log(message: str) -> None:
    print(f"[default_path {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True,
                          text=True).stdout


def env() -> dict[str, str]:
    """Child environment: offline, no corpus/index overrides, no Ray or Milvus settings."""
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("CRAMPQA_", "RAY_"))}
    e.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return e


def run(cmd: list[str], timeout: float = 1200, extra: dict[str, str] | None = None,
        ) -> tuple[float, str]:
    """Run ``cmd``; (wall seconds, stdout). Fails loudly."""
    child = env()
    child.update(extra or {})
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=child, capture_output=True, text=True,
                          timeout=timeout, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"default_path: {' '.join(cmd[2:6])} ... failed "
                         f"({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, proc.stdout


def package_bytes(rev: str) -> dict[str, Any]:
    """Bytes of the files a default install of ``rev`` puts in site-packages/crampqa."""
    pyproject = tomllib.loads(git("show", f"{rev}:pyproject.toml"))
    data_globs = pyproject["tool"]["setuptools"]["package-data"]["crampqa"]
    total, files = 0, 0
    for line in git("ls-tree", "-r", "-l", rev, "--", "crampqa").splitlines():
        meta, path = line.split("\t", 1)
        size = int(meta.split()[3])
        inside = Path(path).relative_to("crampqa")
        if path.endswith(".py") or any(inside.match(g) for g in data_globs):
            total += size
            files += 1
    return {"dependencies": pyproject["project"]["dependencies"],
            "package_bytes": total, "package_files": files}


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default=BEFORE_RAY_MILVUS, help="revision before")
    parser.add_argument("--head", default=AFTER_RAY_MILVUS, help="revision after")
    parser.add_argument("--rounds", type=int, default=8, help="cold rounds per revision")
    parser.add_argument("--warm-rounds", type=int, default=3,
                        help="warm processes per revision")
    parser.add_argument("--passes", type=int, default=3, help="warm passes per process")
    parser.add_argument("--question", default=DEFAULT_QUESTION)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    python = sys.executable
    revs = {"base": git("rev-parse", "--short", args.base).strip(),
            "head": git("rev-parse", "--short", args.head).strip()}
    report: dict[str, Any] = {"revisions": revs, "question": args.question}
    with tempfile.TemporaryDirectory(prefix="crampqa-default-path-") as tmp:
        work = Path(tmp)
        runner = work / "runner.py"
        runner.write_text(RUNNER)
        warm = work / "warm.py"
        warm.write_text(WARM)
        trees: dict[str, Path] = {}
        try:
            for side, rev in revs.items():
                trees[side] = work / f"tree-{side}"
                git("worktree", "add", "--detach", "--quiet", str(trees[side]), rev)
            _measure(args, python, runner, warm, work, trees, report)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)],
                               cwd=REPO, check=False, capture_output=True)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)


def _measure(args: argparse.Namespace, python: str, runner: Path, warm: Path, work: Path,
             trees: dict[str, Path], report: dict[str, Any]) -> None:
    revs = report["revisions"]
    install = {side: package_bytes(rev) for side, rev in revs.items()}
    report["install"] = {
        "same_dependencies": install["base"]["dependencies"] == install["head"]["dependencies"],
        **{side: {k: v for k, v in info.items() if k != "dependencies"}
           for side, info in install.items()},
    }

    indexes: dict[str, Path] = {}
    report["index"] = {}
    for side, tree in trees.items():
        indexes[side] = work / f"index-{side}"
        log(f"building the default index with {side} ({revs[side]})")
        wall, _ = run([python, str(runner), str(tree), "index", "--corpus", str(CORPUS),
                       "--index", str(indexes[side])])
        current = indexes[side] / (indexes[side] / "CURRENT").read_text().strip()
        report["index"][side] = {"build_s": round(wall, 1),
                                 "bytes": folder_bytes(indexes[side]),
                                 "embeddings_sha256": sha256(current / "embeddings.npy")}
    report["index"]["same_embeddings"] = (report["index"]["base"]["embeddings_sha256"]
                                          == report["index"]["head"]["embeddings_sha256"])

    cold: dict[str, list[float]] = {"base": [], "head": []}
    modules: dict[str, list[str]] = {}
    order = ["base", "head"]
    for round_no in range(args.rounds + 1):  # round 0 warms the file cache, untimed
        for side in order if round_no % 2 else order[::-1]:
            listing = work / f"modules-{side}.json"
            wall, _ = run([python, str(runner), str(trees[side]), "ask", args.question,
                           "--json", "--index", str(indexes[side])],
                          extra={"DEFAULT_PATH_MODULES": str(listing)})
            if round_no:
                cold[side].append(wall)
            modules[side] = json.loads(listing.read_text())
        log(f"cold round {round_no}/{args.rounds}")
    report["cold"] = {
        side: {"median_s": round(statistics.median(times), 3),
               "optional_imported": [m for m in OPTIONAL if m in modules[side]],
               "modules": len(modules[side])}
        for side, times in cold.items()}
    report["cold"]["ratio_head_to_base"] = round(
        report["cold"]["head"]["median_s"] / report["cold"]["base"]["median_s"], 3)

    p50s: dict[str, list[float]] = {"base": [], "head": []}
    p95s: dict[str, list[float]] = {"base": [], "head": []}
    answers: dict[str, dict[str, Any]] = {}
    for round_no in range(args.warm_rounds):
        for side in order if round_no % 2 == 0 else order[::-1]:
            _, out = run([python, str(warm), str(trees[side]), str(indexes[side]),
                          str(QUESTIONS), "10", str(args.passes)])
            result = json.loads(out)
            p50s[side].append(statistics.median(result["times"]) * 1000)
            p95s[side].append(quantile(result["times"], 0.95) * 1000)
            answers[side] = result["answers"]
        log(f"warm round {round_no + 1}/{args.warm_rounds}")
    report["warm"] = {
        side: {"p50_ms": round(statistics.median(p50s[side]), 2),
               "p95_ms": round(statistics.median(p95s[side]), 2),
               "asks": len(answers[side]) * args.passes * args.warm_rounds}
        for side in order}
    report["warm"]["p50_ratio_head_to_base"] = round(
        report["warm"]["head"]["p50_ms"] / report["warm"]["base"]["p50_ms"], 3)
    differ = sorted(q for q in answers["base"] if answers["base"][q] != answers["head"].get(q))
    report["answers"] = {"questions": len(answers["base"]), "same": not differ,
                         "differ": differ}


def print_table(report: dict[str, Any]) -> None:
    revs, install, index = report["revisions"], report["install"], report["index"]
    cold, warm = report["cold"], report["warm"]
    rows = [
        ("default dependencies", "", "", "same" if install["same_dependencies"] else "DIFFER"),
        ("crampqa package, bytes", install["base"]["package_bytes"],
         install["head"]["package_bytes"],
         f"{install['head']['package_bytes'] - install['base']['package_bytes']:+d}"),
        ("default index, bytes", index["base"]["bytes"], index["head"]["bytes"],
         "same embeddings" if index["same_embeddings"] else "embeddings DIFFER"),
        ("cold ask, median s", cold["base"]["median_s"], cold["head"]["median_s"],
         f"x{cold['ratio_head_to_base']}"),
        ("optional packages imported", ",".join(cold["base"]["optional_imported"]) or "none",
         ",".join(cold["head"]["optional_imported"]) or "none", ""),
        ("warm ask p50, ms", warm["base"]["p50_ms"], warm["head"]["p50_ms"],
         f"x{warm['p50_ratio_head_to_base']}"),
        ("warm ask p95, ms", warm["base"]["p95_ms"], warm["head"]["p95_ms"], ""),
        ("same answers", "", "",
         f"{report['answers']['questions']} questions: "
         + ("same" if report["answers"]["same"] else f"{len(report['answers']['differ'])} differ")),
    ]
    print(f"| | base {revs['base']} | head {revs['head']} | |")
    print("| --- | --- | --- | --- |")
    for name, one, two, note in rows:
        print(f"| {name} | {one} | {two} | {note} |")


if __name__ == "__main__":
    main()
