"""Bounded load check of the web service (`crampqa serve`).

Starts the server in a subprocess on a free loopback port, waits for /api/health, then
sends a fixed number of concurrent GET /api/ask requests (questions from
eval/questions.jsonl, cycled) from this process, and reports latency percentiles, errors
and throughput. The server is always stopped at the end.

    .venv/bin/python benchmarks/load_web.py --requests 200 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Report:
    """What one load run measured (latencies in milliseconds)."""

    requests: int
    concurrency: int
    errors: int
    wall_s: float
    throughput_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    sequential_p50_ms: float
    cpus: int
    python: str


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def load_questions(path: Path) -> list[str]:
    """The ``question`` field of every line of a JSONL question set."""
    questions = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            questions.append(str(json.loads(line)["question"]))
    if not questions:
        raise SystemExit(f"no questions in {path}")
    return questions


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_server(
    port: int, corpus: str | None, index: str | None, startup_s: float
) -> Iterator[str]:
    """`crampqa serve` in a subprocess; yields its base URL once /api/health answers."""
    cmd = [sys.executable, "-m", "crampqa.cli", "serve", "--host", "127.0.0.1",
           "--port", str(port)]
    if corpus:
        cmd += ["--corpus", corpus]
    if index:
        cmd += ["--index", index]
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + startup_s
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise SystemExit(f"the server exited early:\n{log.read()}")
                try:
                    if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    log.seek(0)
                    raise SystemExit(f"the server did not start in {startup_s:.0f}s:\n"
                                     f"{log.read()}")
                time.sleep(0.25)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def one(client: httpx.AsyncClient, question: str, k: int) -> tuple[float, bool]:
    """Latency (ms) of one ask and whether it succeeded with a well-formed answer."""
    started = time.perf_counter()
    try:
        response = await client.get("/api/ask", params={"q": question, "k": k})
        ok = response.status_code == 200 and "passages" in response.json()
    except (httpx.HTTPError, ValueError):
        ok = False
    return (time.perf_counter() - started) * 1000, ok


async def run_load(
    base: str, questions: list[str], requests: int, concurrency: int, k: int, timeout: float
) -> tuple[list[float], int, float, list[float]]:
    """Sequential warm-up/baseline, then ``requests`` asks at most ``concurrency`` at once."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as client:
        sequential = [(await one(client, questions[i % len(questions)], k))[0]
                      for i in range(20)]
        gate = asyncio.Semaphore(concurrency)

        async def limited(i: int) -> tuple[float, bool]:
            async with gate:
                return await one(client, questions[i % len(questions)], k)

        started = time.perf_counter()
        results = await asyncio.gather(*(limited(i) for i in range(requests)))
        wall = time.perf_counter() - started
    latencies = [ms for ms, _ in results]
    errors = sum(1 for _, ok in results if not ok)
    return latencies, errors, wall, sequential


def main(argv: list[str] | None = None) -> int:
    """Run the load check and print (and optionally save) its report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    parser.add_argument("--budget", type=float, default=600.0, help="whole load, seconds")
    parser.add_argument("--startup", type=float, default=600.0, help="server start, seconds")
    parser.add_argument("--questions", type=Path, default=ROOT / "eval" / "questions.jsonl")
    parser.add_argument("--corpus")
    parser.add_argument("--index")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= 10_000 or not 1 <= args.concurrency <= 256:
        parser.error("--requests must be 1..10000 and --concurrency 1..256")

    questions = load_questions(args.questions)
    with running_server(free_port(), args.corpus, args.index, args.startup) as base:
        latencies, errors, wall, sequential = asyncio.run(asyncio.wait_for(
            run_load(base, questions, args.requests, args.concurrency, args.k, args.timeout),
            timeout=args.budget,
        ))
    report = Report(
        requests=args.requests,
        concurrency=args.concurrency,
        errors=errors,
        wall_s=round(wall, 2),
        throughput_rps=round(args.requests / wall, 1),
        p50_ms=round(percentile(latencies, 50), 1),
        p95_ms=round(percentile(latencies, 95), 1),
        p99_ms=round(percentile(latencies, 99), 1),
        max_ms=round(max(latencies), 1),
        sequential_p50_ms=round(percentile(sequential, 50), 1),
        cpus=os.cpu_count() or 0,
        python=platform.python_version(),
    )
    print(f"{report.requests} requests, {report.concurrency} concurrent, "
          f"{len(questions)} distinct questions, {report.cpus} CPUs")
    print(f"errors: {report.errors}")
    print(f"latency: p50 {report.p50_ms} ms, p95 {report.p95_ms} ms, p99 {report.p99_ms} ms, "
          f"max {report.max_ms} ms")
    print(f"throughput: {report.throughput_rps} requests/s over {report.wall_s} s")
    print(f"one client at a time: p50 {report.sequential_p50_ms} ms")
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
