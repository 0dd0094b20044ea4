"""Training pairs from the team-written lay articles (``data/lay/``).

Each article is cut into passages by crampqa's own chunker, and each passage is given to
the scorer as crampqa gives it at question time: its section heading and its context (a
table's header row or a list's lead-in line) on lines of their own, then the passage. So
the scorer learns on text shaped like the product's: headings, lists with lead-in lines,
table rows, introductions that end with a question.

Pairs (label 1: the passage answers the question; 0: it does not):

- ``lay``: an answerable question with the passage that holds its evidence (1);
- ``lay-intro``: the same question with the article's first passage, the introduction (0);
- ``lay-lead-in``: with a passage that only leads in (ends in a question or colon) (0);
- ``lay-same-article``: with the BM25-closest other passage of the same article (0);
- ``lay-other-section``: with a passage of another section of the same article (0);
- ``lay-near-topic``: a near-topic question with the article's two BM25-closest passages (0).

Articles are split, not questions: every article's questions and passages are all in
train or all in dev.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from crampqa.chunking import Chunk, chunk_text
from crampqa.retrieval import is_lead_in

LAY = Path(__file__).resolve().parent / "data" / "lay"


@dataclass(frozen=True)
class LayPair:
    """One pair: question, the passage as the scorer reads it, label, and its kind."""

    question: str
    passage: str
    label: int
    source: str


@dataclass(frozen=True)
class Article:
    """One lay article, cut into passages."""

    slug: str
    text: str
    chunks: list[Chunk]

    def scorer_text(self, chunk: Chunk) -> str:
        """What crampqa's scorer reads for a passage: heading, context, then the passage."""
        parts = [self.text[span[0]:span[1]] for span in (chunk.heading, chunk.context)
                 if span is not None]
        parts.append(self.text[chunk.start:chunk.end])
        return "\n".join(parts)

    def passage(self, chunk: Chunk) -> str:
        return self.text[chunk.start:chunk.end]


def read_articles() -> list[Article]:
    """Every lay article that has a questions file, in slug order."""
    articles = []
    for path in sorted((LAY / "articles").glob("*.md")):
        if (LAY / "questions" / f"{path.stem}.jsonl").is_file():
            text = path.read_text(encoding="utf-8")
            articles.append(Article(path.stem, text, chunk_text(text)))
    return articles


def split_articles(articles: list[Article], seed: int) -> tuple[list[Article], list[Article]]:
    """Train and dev articles (one in ten for dev), deterministic for a seed."""
    order = sorted(articles, key=lambda a: a.slug)
    random.Random(seed).shuffle(order)
    n_dev = max(1, len(order) // 10) if len(order) > 1 else 0
    return order[n_dev:], order[:n_dev]


def _questions(slug: str) -> list[dict[str, object]]:
    path = LAY / "questions" / f"{slug}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def _holding(article: Article, evidence: str) -> int | None:
    """The index of the passage that holds most of ``evidence`` (None: no passage holds
    at least half of it)."""
    start = article.text.find(evidence)
    if start < 0:
        return None
    end = start + len(evidence)
    best, best_overlap = None, 0
    for i, chunk in enumerate(article.chunks):
        overlap = min(end, chunk.end) - max(start, chunk.start)
        if overlap > best_overlap:
            best, best_overlap = i, overlap
    return best if best_overlap * 2 >= len(evidence) else None


def _bm25_order(article: Article, questions: list[str]) -> list[list[int]]:
    """For each question, the article's passages from BM25-closest to farthest."""
    import bm25s

    corpus = [article.scorer_text(c) for c in article.chunks]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False),
                    show_progress=False)
    k = len(corpus)
    tokens = bm25s.tokenize(questions, stopwords="en", show_progress=False)
    results, _ = retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
    return [[int(i) for i in row] for row in results]


def lay_pairs(articles: list[Article], rng: random.Random) -> list[LayPair]:
    """Every pair of the given articles (see the module docstring)."""
    pairs: list[LayPair] = []
    for article in articles:
        if len(article.chunks) < 3:
            continue
        rows = _questions(article.slug)
        orders = _bm25_order(article, [str(r["question"]) for r in rows])
        heading_of = [c.heading for c in article.chunks]
        lead_ins = [i for i, c in enumerate(article.chunks) if is_lead_in(article.passage(c))]
        for row, order in zip(rows, orders, strict=True):
            question = str(row["question"])
            if row["label"] == 0:
                for i in order[:2]:
                    pairs.append(LayPair(question, article.scorer_text(article.chunks[i]), 0,
                                         "lay-near-topic"))
                continue
            pos = _holding(article, str(row["evidence"]))
            if pos is None:
                continue
            pairs.append(LayPair(question, article.scorer_text(article.chunks[pos]), 1, "lay"))
            negatives: list[tuple[int, str]] = []
            if pos != 0:
                negatives.append((0, "lay-intro"))
            leads = [i for i in lead_ins if i not in (pos, 0)]
            if leads:
                negatives.append((rng.choice(leads), "lay-lead-in"))
            close = [i for i in order if i != pos and i not in {n for n, _ in negatives}]
            if close:
                negatives.append((close[0], "lay-same-article"))
            other = [i for i, h in enumerate(heading_of)
                     if h != heading_of[pos] and i not in {n for n, _ in negatives} and i != pos]
            if other:
                negatives.append((rng.choice(other), "lay-other-section"))
            for i, source in negatives:
                pairs.append(LayPair(question, article.scorer_text(article.chunks[i]), 0,
                                     source))
    return pairs


if __name__ == "__main__":
    import collections

    arts = read_articles()
    train, dev = split_articles(arts, 13)
    for name, part in (("train", train), ("dev", dev)):
        ps = lay_pairs(part, random.Random(13))
        print(name, len(part), "articles,", sum(len(a.chunks) for a in part), "passages,",
              len(ps), "pairs", dict(collections.Counter(p.source for p in ps)))
