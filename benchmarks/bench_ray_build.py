"""Build throughput: the local build against ``--engine ray`` with 1 and 2 local workers.

Run from the repository root, inside a loopback-only network namespace (Ray listens on
the machine's interfaces otherwise; the private heads started here stay in it)::

    unshare -n sh -c 'ip link set lo up && \\
        .venv/bin/python benchmarks/bench_ray_build.py --docs 400'

The first ``--docs`` documents of MedQuAD (``../shared/datasets/medquad/corpus.jsonl.gz``)
are written to a temporary BEIR folder. Each build is a fresh ``crampqa index --rebuild``
process into its own empty index folder, so every wall time includes what a user waits
for: starting Python, reading, (for Ray) starting a private local head and its workers,
loading the model (once per worker), chunking, embedding and the single final write. The
three builds run one after another, ``--rounds`` times in rotating order, so that all see
the same machine load; documents per second is ``--docs`` over the median wall time.
Every Ray build is checked against the local one (``compare_indexes.py``): byte-identical
passages, sentences and documents, and the largest difference of each vector array.
Progress on stderr, a table (or ``--json``) on stdout.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from compare_indexes import compare  # this folder

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MEDQUAD = REPO.parent / "shared" / "datasets" / "medquad"

#: name -> extra ``crampqa index`` arguments
ENGINES: dict[str, list[str]] = {
    "local": [],
    "ray, 1 worker": ["--engine", "ray", "--workers", "1"],
    "ray, 2 workers": ["--engine", "ray", "--workers", "2"],
}


def log(message: str) -> None:
    print(f"[bench_ray_build {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr,
          flush=True)


def subset(count: int, folder: Path) -> Path:
    """The first ``count`` documents of MedQuAD as a BEIR corpus folder."""
    source = next((MEDQUAD / name for name in ("corpus.jsonl", "corpus.jsonl.gz")
                   if (MEDQUAD / name).is_file()), None)
    if source is None:
        sys.exit(f"bench_ray_build: no corpus.jsonl(.gz) in {MEDQUAD}; nothing to measure.")
    folder.mkdir(parents=True)
    opener = gzip.open if source.suffix == ".gz" else open
    with opener(source, "rt", encoding="utf-8") as src, \
            (folder / "corpus.jsonl").open("w", encoding="utf-8") as out:
        for n, line in enumerate(src):
            if n == count:
                break
            out.write(line)
    return folder


def build(corpus: Path, index: Path, extra: list[str]) -> dict[str, Any]:
    """One fresh `crampqa index --rebuild` process: wall time and its summary line."""
    cmd = [str(BIN / "crampqa"), "index", "--corpus", str(corpus), "--index", str(index),
           "--rebuild", *extra]
    log("running " + " ".join(cmd[1:]))
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"bench_ray_build: build failed ({proc.returncode}): {proc.stderr[-2000:]}")
    summary = [line for line in proc.stderr.splitlines() if line.startswith("Indexed ")][-1]
    return {"wall_s": wall, "summary": summary}


def version(index: Path) -> Path:
    return index / (index / "CURRENT").read_text(encoding="utf-8").strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=400, help="MedQuAD documents (first N)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    walls: dict[str, list[float]] = {name: [] for name in ENGINES}
    checks: dict[str, Any] = {}
    summaries: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        corpus = subset(args.docs, Path(tmp) / "corpus")
        names = list(ENGINES)
        for r in range(args.rounds):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                index = Path(tmp) / f"index-{r}-{names.index(name)}"
                result = build(corpus, index, ENGINES[name])
                walls[name].append(result["wall_s"])
                summaries[name] = result["summary"]
                log(f"{name}: {result['wall_s']:.1f}s  {result['summary']}")
            local = version(Path(tmp) / f"index-{r}-0")
            for n, name in enumerate(names[1:], start=1):
                checks[name] = compare(version(Path(tmp) / f"index-{r}-{n}"), local)
    report = {
        "docs": args.docs, "rounds": args.rounds, "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "median_wall_s": {k: statistics.median(v) for k, v in walls.items()},
        "docs_per_s": {k: args.docs / statistics.median(v) for k, v in walls.items()},
        "summaries": summaries, "same_as_local": checks,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{args.docs} MedQuAD documents, {args.rounds} round(s), {os.cpu_count()} CPUs")
    print(f"{'build':<16} {'wall s':>8} {'docs/s':>8}")
    for name in ENGINES:
        print(f"{name:<16} {report['median_wall_s'][name]:>8.1f} "
              f"{report['docs_per_s'][name]:>8.2f}")
    for name, check in checks.items():
        print(f"{name} vs local: {json.dumps(check)}")
    for name, line in summaries.items():
        print(f"{name}: {line}")


if __name__ == "__main__":
    main()
