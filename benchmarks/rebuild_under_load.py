"""Rebuild the index twice while `crampqa serve` answers a steady, bounded load.

A copy of the corpus is indexed into a temporary folder and served by a real `crampqa
serve` on a free 127.0.0.1 port. Client threads send ``GET /api/ask`` (at most
``--max-requests`` in all, about ``--rate`` a second) while this process, twice, changes
the corpus files and runs `crampqa index`:

1. adds an article (``quokka.md``) and deletes another;
2. deletes ``quokka.md`` again and rewrites a paragraph of a third article.

After each build it polls ``/api/health`` until the service names the new version, then
keeps the load on for ``--settle`` seconds before the next change. Reported: requests
sent and failed (anything but 200, or no answer), and for each switch how long the
service took to follow, how many requests were answered after it, and how many of their
passages did not match the files on disk (``text == document_text[start:end]`` of the
corpus as it is then, the deleted article included). Requests sent before a switch may
be answered by either version; each of their passages must match one of them.

    .venv/bin/python benchmarks/rebuild_under_load.py

Localhost only; bounded in requests (``--max-requests``) and time (``--max-seconds``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from crampqa.corpus import read_corpus
from crampqa.store import current_version
from crampqa.web.launch import running_server

ROOT = Path(__file__).resolve().parent.parent
NEW_DOC = ("# Quokka cramps\n\nQuokka cramps are eased by zebra tonic, says nobody; this "
           "article exists only while the index is rebuilt under load.\n")
NEW_QUESTION = "quokka cramps zebra tonic"
CHANGED_TAIL = ("\n\nRebuild marker: wombat stretches ease marsupial calf cramps, a made-up "
                "sentence added while the index is rebuilt under load.\n")
CHANGED_QUESTION = "wombat stretches marsupial calf cramps"


@dataclass
class Reply:
    """One request: when it was sent, its status, and the passages it got."""

    sent: float
    status: int
    passages: list[dict[str, Any]] = field(default_factory=list)


def texts(corpus: Path) -> dict[str, str]:
    """Document ID -> decoded text, as the files on disk are now."""
    return {d.doc_id: d.text for d in read_corpus(corpus).documents}


def matches(passages: list[dict[str, Any]], corpus_texts: dict[str, str]) -> int:
    """How many passages match these files."""
    return sum(1 for p in passages
               if p["doc_id"] in corpus_texts
               and corpus_texts[p["doc_id"]][p["start"]:p["end"]] == p["text"])


def questions() -> list[str]:
    rows = [json.loads(line) for line in (ROOT / "eval" / "questions.jsonl").read_text(
        encoding="utf-8").splitlines() if line.strip()]
    asked = [str(r["question"]) for r in rows if r.get("question")][:40]
    return [*asked, NEW_QUESTION, CHANGED_QUESTION]


class Load:
    """Client threads sending a bounded, paced stream of asks."""

    def __init__(self, base: str, threads: int, rate: float, max_requests: int) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.threads, self.gap = threads, threads / rate
        self.max_requests = max_requests
        self.questions = questions()
        self.replies: list[Reply] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.sent = 0
        self.workers = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(threads)]

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def finish(self) -> None:
        self.stop.set()
        for worker in self.workers:
            worker.join(timeout=60)

    def _take(self) -> int | None:
        with self.lock:
            if self.sent >= self.max_requests:
                return None
            self.sent += 1
            return self.sent

    def _run(self, offset: int) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        while not self.stop.is_set():
            n = self._take()
            if n is None:
                return
            question = self.questions[(n * 7 + offset) % len(self.questions)]
            sent = time.monotonic()
            try:
                conn.request("GET", "/api/ask?" + urlencode({"q": question, "k": 3}))
                response = conn.getresponse()
                body = response.read()
                reply = Reply(sent, response.status)
                if response.status == 200:
                    reply.passages = json.loads(body)["passages"]
            except (OSError, http.client.HTTPException, ValueError):
                reply = Reply(sent, 0)
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            with self.lock:
                self.replies.append(reply)
            self.stop.wait(max(0.0, self.gap - (time.monotonic() - sent)))
        conn.close()


def served_version(base: str) -> str:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request("GET", "/api/health")
        return str(json.loads(conn.getresponse().read())["index"])
    finally:
        conn.close()


def build(corpus: Path, index: Path) -> float:
    """`crampqa index` in a subprocess; returns its seconds."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "crampqa.cli", "index", "--corpus",
                           str(corpus), "--index", str(index)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"crampqa index failed: {done.stderr.strip()}")
    return time.monotonic() - started


def change(step: int, corpus: Path) -> str:
    """Change the corpus files for rebuild ``step``; returns what was done."""
    if step == 0:
        (corpus / "quokka.md").write_text(NEW_DOC, encoding="utf-8")
        gone = sorted(corpus.glob("*.txt"))[0]
        gone.unlink()
        return f"added quokka.md, deleted {gone.name}"
    (corpus / "quokka.md").unlink()
    target = sorted(corpus.glob("*.txt"))[-1]
    with target.open("a", encoding="utf-8") as handle:
        handle.write(CHANGED_TAIL)
    return f"deleted quokka.md, appended a paragraph to {target.name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-requests", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=20.0, help="requests a second")
    parser.add_argument("--threads", type=int, default=4, help="client threads")
    parser.add_argument("--settle", type=float, default=8.0,
                        help="seconds of load after each switch")
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    deadline = time.monotonic() + args.max_seconds
    with tempfile.TemporaryDirectory(prefix="crampqa-rebuild-") as tmp:
        corpus, index = Path(tmp) / "corpus", Path(tmp) / "index"
        shutil.copytree(ROOT / "corpus", corpus)
        first_build = build(corpus, index)
        print(f"first build: {first_build:.1f} s", flush=True)
        corpora = [texts(corpus)]
        with running_server(corpus, index, cwd=ROOT, extra_args=["--threads", "2"],
                            log_path=Path(tmp) / "serve.log") as base:
            load = Load(base, args.threads, args.rate, args.max_requests)
            load.start()
            time.sleep(args.settle)
            switches: list[dict[str, Any]] = []
            for step in range(2):
                changed_at = time.monotonic()
                what = change(step, corpus)
                seconds = build(corpus, index)
                built_at = time.monotonic()
                folder = current_version(index)
                assert folder is not None
                while served_version(base) != folder.name:
                    if time.monotonic() > deadline:
                        raise SystemExit("the service did not switch in time")
                    time.sleep(0.05)
                switched_at = time.monotonic()
                corpora.append(texts(corpus))
                time.sleep(args.settle)
                switches.append({"change": what, "build_s": round(seconds, 1),
                                 "follow_s": round(switched_at - built_at, 2),
                                 "changed_at": changed_at, "switched_at": switched_at,
                                 "until": time.monotonic(), "version": folder.name})
            load.finish()
        log = (Path(tmp) / "serve.log").read_text(encoding="utf-8")
    report = summarise(load.replies, switches, corpora)
    report["serve_log_tracebacks"] = log.count("Traceback")
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    ok = report["failed"] == 0 and all(s["mismatched_passages"] == 0
                                       for s in report["switches"])
    raise SystemExit(0 if ok else 1)


def summarise(replies: list[Reply], switches: list[dict[str, Any]],
              corpora: list[dict[str, str]]) -> dict[str, Any]:
    """The figures: failures overall; per switch, passages against the files on disk."""
    report: dict[str, Any] = {
        "requests": len(replies),
        "failed": sum(1 for r in replies if r.status != 200),
        "statuses": sorted({r.status for r in replies}),
        "switches": [],
    }
    unexplained = 0
    for reply in replies:  # every passage comes from one of the versions served
        for p in reply.passages:
            if not any(matches([p], c) for c in corpora):
                unexplained += 1
    report["passages_matching_no_version"] = unexplained
    for n, switch in enumerate(switches, start=1):
        after = [r for r in replies if switch["switched_at"] <= r.sent < switch["until"]]
        disk = corpora[n]
        passages = [p for r in after for p in r.passages]
        gone = set(corpora[n - 1]) - set(disk)
        report["switches"].append({
            "change": switch["change"],
            "build_s": switch["build_s"],
            "service_followed_within_s": switch["follow_s"],
            "requests_after_switch": len(after),
            "failed_after_switch": sum(1 for r in after if r.status != 200),
            "passages_checked": len(passages),
            "mismatched_passages": len(passages) - matches(passages, disk),
            "deleted_documents_served": sum(1 for p in passages if p["doc_id"] in gone),
        })
    return report


if __name__ == "__main__":
    main()
