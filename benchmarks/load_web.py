"""Bounded load check of the web service (`crampqa serve`), for two question mixes.

For each mix a fresh `crampqa serve` (empty answer cache) is started on a free loopback
port; this process then sends 20 sequential warm-up asks (questions not in the mix), the
mix itself (``--requests`` GET /api/ask, ``--concurrency`` at a time over keep-alive
connections), and 20 sequential repeats of one question of the mix. The mixes:

* ``distinct``: every request a different question: the questions of
  eval/questions.jsonl as written, then reworded (a lead-in and/or a tail added), so each
  one misses the answer cache and costs a full ask.
* ``popular``: ``--popular`` questions of the set, drawn with Zipf weights (the first
  asked most), so most requests repeat a question asked before. Sent twice on the same
  server: ``popular-cold`` starts with an empty cache (the first request of each
  question misses, and the requests behind it wait), ``popular-warm`` repeats the same
  requests once every answer is cached (a long-running service's steady state).

* ``capacity`` and ``poisson`` (the restated target of the answer-scorer work): the
  service's capacity is its throughput for distinct questions with ``--capacity-concurrency``
  requests in flight (enough to keep every engine thread busy); then a fresh server gets
  ``--requests`` distinct questions whose arrivals are Poisson-spaced at ``--load`` x that
  capacity (default half), at most ``--max-in-flight`` at once, and p95 <= 100 ms is
  checked for them. ``--rate`` gives the arrival rate instead of measuring it.

Every answer is checked (status 200, a JSON answer to the question that was asked).
Reported per mix: errors, latency p50/p95/p99/max, throughput, and the sequential
uncached and cached p50; with the machine's load average before and after.

The default client is a minimal HTTP/1.1 client on asyncio streams: it costs about 0.1 ms
of CPU per request, where httpx costs about 1.7 ms, which on a 2-core machine shared
with the server would be measured as server latency. ``--client httpx`` uses httpx.

    .venv/bin/python benchmarks/load_web.py --requests 200 --concurrency 200
    .venv/bin/python benchmarks/load_web.py --mixes distinct,capacity,poisson
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from crampqa.web.launch import ServerStartError, running_server

ROOT = Path(__file__).resolve().parent.parent

#: The latency target of issue #8: 200 concurrent requests on the 2-core machine.
TARGET_P95_MS = 100.0
#: Ways a question is reworded for the distinct mix (lead-in, tail): 6 x 4 forms each.
LEADS = ("", "quick question: ", "can you tell me ", "I keep wondering ",
         "please explain ", "my doctor is busy, so: ")
TAILS = ("", " - thanks", " (asking for my dad)", " please")
SEQUENTIAL = 20
MIXES = ("distinct", "popular", "capacity", "poisson")

Getter = Callable[[str], Awaitable[tuple[int, bytes]]]


@dataclass
class MixReport:
    """What one mix measured (latencies in milliseconds)."""

    mix: str
    requests: int
    unique_questions: int
    concurrency: int
    errors: int
    wall_s: float
    throughput_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    sequential_uncached_p50_ms: float
    sequential_cached_p50_ms: float
    target_met: bool


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
        obj = json.loads(line) if line.strip() else {}
        if "question" in obj:  # the set's header line has none
            questions.append(str(obj["question"]))
    if not questions:
        raise SystemExit(f"no questions in {path}")
    return questions


def reworded(questions: Sequence[str]) -> list[str]:
    """Every question as written, then each reworded; distinct, in that order."""
    seen: set[str] = set()
    out = []
    for tail in TAILS:
        for lead in LEADS:
            for q in questions:
                text = f"{lead}{q}{tail}"
                key = " ".join(text.split())
                if key not in seen:
                    seen.add(key)
                    out.append(text)
    return out


def plan_mix(
    mix: str, questions: Sequence[str], requests: int, popular: int, seed: int
) -> tuple[list[str], list[str]]:
    """The mix's requests in order, and warm-up questions that are not among them."""
    pool = reworded(questions)
    warm = pool[-SEQUENTIAL:]
    if mix in ("distinct", "capacity", "poisson"):
        if requests > len(pool) - SEQUENTIAL:
            raise SystemExit(f"--requests: at most {len(pool) - SEQUENTIAL} distinct questions")
        return pool[:requests], warm
    top = list(questions[:popular])
    weights = [1.0 / rank for rank in range(1, len(top) + 1)]
    return random.Random(seed).choices(top, weights=weights, k=requests), warm


def answers_question(status: int, body: bytes, question: str) -> bool:
    """A 200 with a JSON answer to ``question`` (as the engine cleans it)."""
    if status != 200:
        return False
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return (isinstance(data, dict) and isinstance(data.get("passages"), list)
            and data.get("question") == " ".join(question.split()))


class Http1:
    """One keep-alive HTTP/1.1 connection: GET only, Content-Length or chunked bodies."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, target: str) -> tuple[int, bytes]:
        """Status and body of ``GET target``; the connection is reopened after a failure."""
        try:
            if self._reader is None or self._writer is None:
                self._reader, self._writer = await asyncio.open_connection(self.host,
                                                                           self.port)
            self._writer.write(f"GET {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                               "Accept: application/json\r\n\r\n".encode("ascii"))
            return await self._read(self._reader)
        except BaseException:
            self.close()
            raise

    async def _read(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            parts = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")
            body = b"".join(parts)
        else:
            body = await reader.read()
            self.close()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body

    def close(self) -> None:
        """Drop the connection (the next request opens a new one)."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


@dataclass
class Pass:
    """One pass of a mix's requests: latencies (ms), failed requests, wall seconds."""

    latencies: list[float]
    errors: int
    wall_s: float


async def run_mix(
    base: str, requests: list[str], warm: list[str], k: int, concurrency: int,
    timeout: float, client: str, passes: int = 1,
) -> tuple[list[Pass], list[float], list[float]]:
    """Warm-up (sequential, uncached), the mix ``passes`` times, then sequential repeats
    (cached). Returns the passes and the sequential latencies (uncached, cached)."""
    url = urlsplit(base)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    close: Callable[[], Awaitable[None]]
    if client == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=concurrency,
                              max_keepalive_connections=concurrency)
        shared = httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits)

        def connect() -> Getter:
            async def get(target: str) -> tuple[int, bytes]:
                response = await shared.get(target)
                return response.status_code, response.content
            return get

        close = shared.aclose
    else:
        conns: list[Http1] = []

        def connect() -> Getter:
            conns.append(Http1(host, port))
            return conns[-1].get

        async def close() -> None:
            for conn in conns:
                conn.close()

    failures: list[str] = []

    async def one(get: Getter, question: str) -> tuple[float, bool]:
        target = "/api/ask?" + urlencode({"q": question, "k": k})
        started = time.perf_counter()
        try:
            status, body = await asyncio.wait_for(get(target), timeout)
            ok = answers_question(status, body, question)
        except Exception as exc:  # any failure (httpx's too) is counted as an error
            ok = False
            failures.append(f"{type(exc).__name__}: {exc}")
        return (time.perf_counter() - started) * 1000, ok

    try:
        first = connect()
        uncached = [(await one(first, q))[0] for q in warm]
        getters = [first] + [connect() for _ in range(concurrency - 1)]

        async def worker(get: Getter, order: Iterator[str],
                         results: list[tuple[float, bool]]) -> None:
            for question in order:  # the workers share one iterator: one request each
                results.append(await one(get, question))

        done: list[Pass] = []
        for _ in range(passes):
            order = iter(requests)
            results: list[tuple[float, bool]] = []
            started = time.perf_counter()
            await asyncio.gather(*(worker(g, order, results) for g in getters))
            done.append(Pass([ms for ms, _ in results], sum(1 for _, ok in results if not ok),
                             time.perf_counter() - started))
        cached = [(await one(first, requests[0]))[0] for _ in range(SEQUENTIAL)]
    finally:
        await close()
    for failure in failures[:5]:
        print(f"request failed: {failure}", file=sys.stderr)
    return done, uncached, cached


async def run_poisson(
    base: str, requests: list[str], warm: list[str], k: int, rate: float, timeout: float,
    max_in_flight: int, seed: int,
) -> tuple[Pass, list[float]]:
    """Warm-up (sequential), then ``requests`` sent at Poisson-spaced times (``rate`` per
    second, exponential gaps from ``seed``), never more than ``max_in_flight`` at once: a
    request due while that many are in flight waits, and its wait counts in its latency.
    Returns the pass and the warm-up latencies."""
    url = urlsplit(base)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    everyone: list[Http1] = []
    gate = asyncio.Semaphore(max_in_flight)
    failures: list[str] = []

    async def one(question: str, due: float) -> tuple[float, bool]:
        async with gate:
            # a new connection per request: an idle keep-alive connection may have been
            # closed by the server between arrivals
            conn = Http1(host, port)
            everyone.append(conn)
            target = "/api/ask?" + urlencode({"q": question, "k": k})
            try:
                status, body = await asyncio.wait_for(conn.get(target), timeout)
                ok = answers_question(status, body, question)
            except Exception as exc:
                ok = False
                failures.append(f"{type(exc).__name__}: {exc}")
            conn.close()
        return (time.perf_counter() - due) * 1000, ok

    try:
        first = Http1(host, port)
        everyone.append(first)
        uncached = []
        for q in warm:
            started = time.perf_counter()
            await first.get("/api/ask?" + urlencode({"q": q, "k": k}))
            uncached.append((time.perf_counter() - started) * 1000)
        first.close()
        gaps = random.Random(seed)
        tasks = []
        start = time.perf_counter()
        due = start
        for question in requests:
            due += gaps.expovariate(rate)
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(question, due)))
        results = await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    finally:
        for conn in everyone:
            conn.close()
    for failure in failures[:5]:
        print(f"request failed: {failure}", file=sys.stderr)
    return Pass([ms for ms, _ in results], sum(1 for _, ok in results if not ok), wall), \
        uncached


def main(argv: list[str] | None = None) -> int:
    """Run the load check for each mix and print (and optionally save) the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="per mix")
    parser.add_argument("--concurrency", type=int, default=200,
                        help="requests in flight at once (default: all 200)")
    parser.add_argument("--threads", type=int, help="`crampqa serve --threads` "
                        "(default: the server's own, one per CPU)")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--mixes", default="distinct,popular",
                        help="comma-separated: distinct, popular, capacity, poisson")
    parser.add_argument("--capacity-concurrency", type=int, default=8,
                        help="requests in flight while capacity is measured")
    parser.add_argument("--load", type=float, default=0.5,
                        help="Poisson arrival rate as a share of the measured capacity")
    parser.add_argument("--rate", type=float,
                        help="Poisson arrivals per second (default: --load x capacity)")
    parser.add_argument("--max-in-flight", type=int, default=64,
                        help="bound on Poisson requests in flight at once")
    parser.add_argument("--popular", type=int, default=10,
                        help="how many questions the popular mix draws from")
    parser.add_argument("--seed", type=int, default=8, help="for the popular mix's draw")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    parser.add_argument("--budget", type=float, default=600.0, help="per mix, seconds")
    parser.add_argument("--startup", type=float, default=600.0, help="server start, seconds")
    parser.add_argument("--questions", type=Path, default=ROOT / "eval" / "questions.jsonl")
    parser.add_argument("--corpus")
    parser.add_argument("--index")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    mixes = [m.strip() for m in args.mixes.split(",") if m.strip()]
    if not 1 <= args.requests <= 10_000 or not 1 <= args.concurrency <= 256:
        parser.error("--requests must be 1..10000 and --concurrency 1..256")
    if args.threads is not None and not 1 <= args.threads <= 64:
        parser.error("--threads must be 1..64")
    if not mixes or any(m not in MIXES for m in mixes):
        parser.error(f"--mixes takes {', '.join(MIXES)}")
    if "poisson" in mixes and args.rate is None and "capacity" not in mixes:
        parser.error("the poisson mix needs --rate or the capacity mix before it")

    questions = load_questions(args.questions)
    if not 1 <= args.popular <= len(questions):
        parser.error(f"--popular must be 1..{len(questions)}")
    load_before = os.getloadavg()
    reports = []
    rate: float | None = args.rate
    capacity: float | None = None
    for mix in mixes:
        requests, warm = plan_mix(mix, questions, args.requests, args.popular, args.seed)
        concurrency = args.capacity_concurrency if mix == "capacity" else args.concurrency
        try:
            extra = ["--threads", str(args.threads)] if args.threads is not None else []
            with running_server(args.corpus, args.index, startup_s=args.startup,
                                cwd=ROOT, extra_args=extra) as base:
                if mix == "poisson":
                    assert rate is not None
                    concurrency = args.max_in_flight
                    done, uncached = asyncio.run(asyncio.wait_for(
                        run_poisson(base, requests, warm, args.k, rate, args.timeout,
                                    args.max_in_flight, args.seed),
                        timeout=args.budget))
                    passes, cached = [done], [math.nan]
                else:
                    passes, uncached, cached = asyncio.run(asyncio.wait_for(
                        run_mix(base, requests, warm, args.k, concurrency, args.timeout,
                                args.client, passes=2 if mix == "popular" else 1),
                        timeout=args.budget,
                    ))
        except ServerStartError as exc:
            raise SystemExit(str(exc)) from None
        if mix == "capacity":
            capacity = len(requests) / passes[0].wall_s
            if args.rate is None:
                rate = capacity * args.load
        names = ["popular-cold", "popular-warm"] if mix == "popular" else \
            [f"poisson@{rate:.1f}/s" if mix == "poisson" else mix]
        for name, done in zip(names, passes, strict=True):
            p95 = round(percentile(done.latencies, 95), 1)
            reports.append(MixReport(
                mix=name,
                requests=len(requests),
                unique_questions=len({" ".join(q.split()) for q in requests}),
                concurrency=concurrency,
                errors=done.errors,
                wall_s=round(done.wall_s, 2),
                throughput_rps=round(len(requests) / done.wall_s, 1),
                p50_ms=round(percentile(done.latencies, 50), 1),
                p95_ms=p95,
                p99_ms=round(percentile(done.latencies, 99), 1),
                max_ms=round(max(done.latencies), 1),
                sequential_uncached_p50_ms=round(percentile(uncached, 50), 1),
                sequential_cached_p50_ms=round(percentile(cached, 50), 1),
                target_met=done.errors == 0 and p95 <= TARGET_P95_MS,
            ))
    load_after = os.getloadavg()

    print(f"{args.requests} requests per mix, {args.concurrency} concurrent, k={args.k}, "
          f"client {args.client}, server threads {args.threads or 'default (one per CPU)'}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} "
          f"{load_before[2]:.2f}, after {load_after[0]:.2f} {load_after[1]:.2f} "
          f"{load_after[2]:.2f} (1, 5, 15 min)")
    cols = ("mix", "requests", "unique", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms",
            "req/s", "seq uncached", "seq cached", f"p95<={TARGET_P95_MS:.0f}ms")
    if capacity is not None:
        print(f"capacity: {capacity:.1f} distinct questions/s with "
              f"{args.capacity_concurrency} in flight")
    print("  ".join(f"{c:>12}" for c in cols))
    for r in reports:
        row = (r.mix, r.requests, r.unique_questions, r.errors, r.p50_ms, r.p95_ms, r.p99_ms,
               r.max_ms, r.throughput_rps, r.sequential_uncached_p50_ms,
               r.sequential_cached_p50_ms, "met" if r.target_met else "MISSED")
        print("  ".join(f"{v!s:>12}" for v in row))
    if args.json:
        args.json.write_text(json.dumps({
            "mixes": [asdict(r) for r in reports],
            "client": args.client,
            "concurrency": args.concurrency,
            "capacity_rps": round(capacity, 2) if capacity is not None else None,
            "poisson_rate_rps": round(rate, 2) if rate is not None else None,
            "server_threads": args.threads,
            "k": args.k,
            "target_p95_ms": TARGET_P95_MS,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
            "cpus": os.cpu_count() or 0,
            "python": platform.python_version(),
        }, indent=2) + "\n", encoding="utf-8")
    return 1 if any(r.errors for r in reports) else 0


if __name__ == "__main__":
    raise SystemExit(main())
