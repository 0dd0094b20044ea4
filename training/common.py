"""Shared helpers of the scorer's training data: reading MedQuAD and the topic split."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEDQUAD = ROOT.parent / "shared" / "datasets" / "medquad"
DATA = Path(__file__).resolve().parent / "data"
SENTENCE_END = re.compile(r"[.!?](?=\s)")


@dataclass(frozen=True)
class Doc:
    """One MedQuAD answer: its topic (title), kind of question (qtype) and text."""

    doc_id: str
    title: str
    qtype: str
    source: str
    text: str


def read_medquad(folder: Path = MEDQUAD) -> list[Doc]:
    """Every MedQuAD document, in file order."""
    if not (folder / "corpus.jsonl.gz").is_file():
        raise SystemExit(f"MedQuAD is not at {folder}: it is read from ../shared/datasets/medquad")
    docs = []
    with gzip.open(folder / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            meta = d.get("metadata") or {}
            docs.append(Doc(d["_id"], d.get("title", ""), meta.get("qtype", ""),
                            meta.get("source", ""), d["text"]))
    return docs


def dev_topics(folder: Path = MEDQUAD) -> set[str]:
    """Topics (titles) of every document judged for MedQuAD's 1,000 dev queries.

    Training never uses these topics, so the MedQuAD figures measure unseen topics.
    """
    docs = {d.doc_id: d.title for d in read_medquad(folder)}
    topics = set()
    with open(folder / "qrels" / "dev.tsv", encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            _, doc_id, _ = line.split("\t")
            topics.add(docs[doc_id].lower())
    return topics


def windows(text: str, max_chars: int = 600) -> Iterator[tuple[int, int]]:
    """Consecutive sentence-aligned spans of at most about ``max_chars`` characters."""
    pos = len(text) - len(text.lstrip())
    while pos < len(text):
        limit = pos + max_chars
        end = None
        for m in SENTENCE_END.finditer(text, pos, min(len(text), limit + 1)):
            end = m.end()
        if end is None or end <= pos:
            end = min(len(text), limit)
            space = text.rfind(" ", pos, end)
            if end < len(text) and space > pos + max_chars // 2:
                end = space
        yield pos, end
        rest = text[end:]
        pos = end + (len(rest) - len(rest.lstrip()))


def squash(text: str) -> str:
    """Whitespace collapsed (MedQuAD texts carry indentation from their HTML)."""
    return " ".join(text.split())
