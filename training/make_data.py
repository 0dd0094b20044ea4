"""Build the scorer's training pairs from MedQuAD and the team's written questions.

Every pair is (question, passage, label): label 1 when the passage answers the question,
0 when it does not. Sources (see DATA_CARD.md):

- MedQuAD questions in MedQuAD's own phrasings and lay rewrites of them (templates per
  ``qtype``, lower case, keyword style, rule-made typos), each paired with a passage of its
  answer (1), a passage of the same topic's other sections (0: the hard negatives), a
  BM25-retrieved passage of another topic (0) and a random passage (0);
- rule-made near-topic questions that a passage cannot answer (0): a drug or supplement it
  never names, an amount where it gives no number, a group of people it never mentions;
- ``data/written_questions.jsonl``: lay and near-topic questions the team wrote over
  MedQuAD passages (1 and 0 as written), with BM25 negatives from other topics;
- ``data/lay/``: the team's lay articles in the style of web articles, with answerable
  and near-topic questions (see ``lay.py``), split by article into train and dev.

Topics of MedQuAD's 1,000 dev queries are left out, and a further 5 % of topics make the
dev split the figures of ``train_scorer.py`` are measured on. The five cramp articles and
the question sets under ``eval/`` are never read here.
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from common import DATA, Doc, dev_topics, read_medquad, squash, windows
from lay import lay_pairs, read_articles, split_articles

TEMPLATES: dict[str, list[str]] = {
    "information": ["What is (are) {t} ?", "what is {t}", "tell me about {t}", "{t}",
                    "what does {t} mean", "i was told i have {t}, what is that"],
    "symptoms": ["What are the symptoms of {t} ?", "signs of {t}", "{t} symptoms",
                 "how do i know if i have {t}", "what does {t} feel like"],
    "treatment": ["What are the treatments for {t} ?", "how is {t} treated",
                  "{t} treatment", "what can i do about {t}", "is there a cure for {t}"],
    "causes": ["What causes {t} ?", "why do people get {t}", "{t} causes",
               "what is the reason for {t}"],
    "inheritance": ["Is {t} inherited ?", "does {t} run in families",
                    "can i pass {t} to my kids", "{t} inheritance"],
    "frequency": ["How many people are affected by {t} ?", "how common is {t}",
                  "{t} prevalence", "how rare is {t}"],
    "genetic changes": ["What are the genetic changes related to {t} ?",
                        "what gene causes {t}", "{t} mutation", "{t} genetics"],
    "exams and tests": ["How to diagnose {t} ?", "what tests check for {t}",
                        "how do doctors find out if you have {t}", "{t} diagnosis"],
    "research": ["what research (or clinical trials) is being done for {t} ?",
                 "new research on {t}", "{t} clinical trials"],
    "outlook": ["What is the outlook for {t} ?", "can you recover from {t}",
                "{t} prognosis", "life expectancy with {t}"],
    "susceptibility": ["Who is at risk for {t}? ?", "who gets {t}", "{t} risk factors",
                       "am i at risk of {t}"],
    "considerations": ["What to do for {t} ?", "what should i eat with {t}",
                       "living with {t}"],
    "prevention": ["How to prevent {t} ?", "how can i avoid {t}", "{t} prevention",
                   "can {t} be prevented"],
    "stages": ["What are the stages of {t} ?", "{t} stages", "how bad can {t} get"],
    "complications": ["What are the complications of {t} ?", "{t} complications",
                      "what can {t} lead to"],
}
DRUGS = ["quinine", "gabapentin", "metformin", "ibuprofen", "zinc", "iron pills",
         "melatonin", "turmeric", "ashwagandha", "vitamin K2", "magnesium glycinate",
         "potassium citrate", "CBD oil", "fish oil", "tonic water", "pickle juice",
         "apple cider vinegar", "collagen", "creatine", "electrolyte drinks", "statins",
         "ropinirole", "acupuncture", "epsom salt baths", "cannabis", "aspirin",
         "vitamin B6", "calcium carbonate", "coconut water", "probiotics"]
POPULATIONS = [("pregnan", "while pregnant"), ("pregnan", "during pregnancy"),
               ("child", "in toddlers"), ("child", "in kids"), ("breastfe", "when breastfeeding"),
               ("athlet", "for marathon runners"), ("elder", "in people over 80"),
               ("teen", "in teenagers")]
AMOUNTS = ["how many mg of {d} should i take for {t}", "what dose of {d} for {t}",
           "how much {d} per day for {t}", "{t} {d} dosage"]
DRUG_QUESTIONS = ["does {d} help {t}", "can {d} treat {t}", "{d} for {t}",
                  "should i take {d} for {t}"]
POP_QUESTIONS = ["is {t} dangerous {p}", "{t} {p}", "how is {t} treated {p}"]


@dataclass
class Pair:
    """One training or dev example."""

    question: str
    passage: str
    label: int
    source: str


def typo(text: str, rng: random.Random) -> str:
    """One rule-made typo (swap, drop or double a letter) in a word of 5+ letters."""
    words = text.split(" ")
    long = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    if not long:
        return text
    i = rng.choice(long)
    w = words[i]
    j = rng.randrange(1, len(w) - 1)
    op = rng.randrange(3)
    if op == 0:
        w = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    elif op == 1:
        w = w[:j] + w[j + 1:]
    else:
        w = w[:j] + w[j] + w[j:]
    words[i] = w
    return " ".join(words)


def short_topic(title: str) -> str:
    """A topic as a layperson would write it: lower case, no bracketed parts."""
    t = re.sub(r"\s*\([^)]*\)", "", title).strip()
    return t.lower() if len(t.split()) <= 4 else t


def question_for(doc: Doc, rng: random.Random) -> str:
    """A question that ``doc``'s answer was written for, in one of several phrasings."""
    templates = TEMPLATES.get(doc.qtype, TEMPLATES["information"])
    if rng.random() < 0.4:
        q = templates[0].format(t=doc.title)
    else:
        q = rng.choice(templates).format(t=short_topic(doc.title))
    if rng.random() < 0.15:
        q = typo(q, rng)
    return q


def passage_text(doc: Doc, span: tuple[int, int], rng: random.Random) -> str:
    """The text the scorer reads: the passage, preceded by its topic half of the time
    (crampqa gives the scorer a passage's section heading in the same way)."""
    text = squash(doc.text[span[0]:span[1]])
    return f"{doc.title}\n{text}" if rng.random() < 0.5 else text


class Negatives:
    """BM25 over the first passage of every document, for hard negatives of other topics."""

    def __init__(self, docs: list[Doc]) -> None:
        import bm25s

        self.docs = docs
        self.first = [next(windows(d.text)) for d in docs]
        corpus = [squash(d.text[s:e]) for d, (s, e) in zip(docs, self.first, strict=True)]
        self.retriever = bm25s.BM25()
        self.retriever.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False),
                             show_progress=False)

    def search(self, questions: list[str], k: int = 8) -> list[list[int]]:
        import bm25s

        tokens = bm25s.tokenize(questions, stopwords="en", show_progress=False)
        results, _ = self.retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        return [[int(i) for i in row] for row in results]


def split_topics(docs: list[Doc], rng: random.Random) -> tuple[list[Doc], list[Doc]]:
    """Documents of training topics and of dev topics (5 %), MedQuAD dev topics left out."""
    held = dev_topics()
    topics = sorted({d.title.lower() for d in docs} - held)
    rng.shuffle(topics)
    dev = set(topics[: len(topics) // 20])
    train = [d for d in docs if d.title.lower() not in held and d.title.lower() not in dev]
    return train, [d for d in docs if d.title.lower() in dev]


def medquad_pairs(docs: list[Doc], rng: random.Random, per_doc: float) -> list[Pair]:
    """Template questions with their answer, same-topic, BM25 and random negatives."""
    by_topic: dict[str, list[Doc]] = defaultdict(list)
    for d in docs:
        by_topic[d.title.lower()].append(d)
    index = Negatives(docs)
    chosen = [d for d in docs if rng.random() < per_doc]
    questions = [question_for(d, rng) for d in chosen]
    hits = index.search(questions)
    pairs: list[Pair] = []
    for doc, q, hit in zip(chosen, questions, hits, strict=True):
        spans = list(windows(doc.text))
        span = spans[0] if rng.random() < 0.7 else rng.choice(spans)
        pairs.append(Pair(q, passage_text(doc, span, rng), 1, "medquad"))
        same = [o for o in by_topic[doc.title.lower()] if o.qtype != doc.qtype]
        if same:
            other = rng.choice(same)
            pairs.append(Pair(q, passage_text(other, rng.choice(list(windows(other.text))),
                                              rng), 0, "medquad-same-topic"))
        far = [i for i in hit if docs[i].title.lower() != doc.title.lower()]
        if far:
            other = docs[far[0] if rng.random() < 0.6 else rng.choice(far)]
            pairs.append(Pair(q, passage_text(other, next(windows(other.text)), rng), 0,
                              "medquad-bm25"))
        other = rng.choice(docs)
        if other.title.lower() != doc.title.lower():
            pairs.append(Pair(q, passage_text(other, next(windows(other.text)), rng), 0,
                              "medquad-random"))
    return pairs


def rule_pairs(docs: list[Doc], rng: random.Random, n: int) -> list[Pair]:
    """Near-topic questions the passage cannot answer: a drug it never names, an amount
    where it has no number, a group of people it never mentions."""
    pairs: list[Pair] = []
    pool = [d for d in docs if d.qtype in ("treatment", "information", "symptoms",
                                           "considerations", "prevention", "causes")]
    while len(pairs) < n:
        doc = rng.choice(pool)
        span = rng.choice(list(windows(doc.text)))
        raw = doc.text[span[0]:span[1]]
        low = raw.lower()
        t = short_topic(doc.title)
        kind = rng.randrange(3)
        drug = rng.choice(DRUGS)
        if kind == 0 and drug.lower().split()[0] not in low:
            q = rng.choice(DRUG_QUESTIONS).format(d=drug, t=t)
        elif kind == 1 and not re.search(r"\d", raw):
            q = rng.choice(AMOUNTS).format(d=drug if drug.lower() not in low else "it", t=t)
        elif kind == 2:
            stem, phrase = rng.choice(POPULATIONS)
            if stem in low:
                continue
            q = rng.choice(POP_QUESTIONS).format(t=t, p=phrase)
        else:
            continue
        if rng.random() < 0.15:
            q = typo(q, rng)
        source = ("rule-drug", "rule-amount", "rule-population")[kind]
        pairs.append(Pair(q, passage_text(doc, span, rng), 0, source))
    return pairs


def written_pairs(docs: list[Doc], rng: random.Random, path: Path) -> list[Pair]:
    """The team's written questions, with BM25 negatives of other topics for answerable ones."""
    by_id = {d.doc_id: d for d in docs}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    rows = [r for r in rows if r["doc_id"] in by_id]
    index = Negatives(docs)
    hits = index.search([r["question"] for r in rows], k=5)
    pairs: list[Pair] = []
    for row, hit in zip(rows, hits, strict=True):
        doc = by_id[row["doc_id"]]
        passage = passage_text(doc, (row["start"], row["end"]), rng)
        pairs.append(Pair(row["question"], passage, int(row["label"]), f"written-{row['kind']}"))
        if row["label"] == 1:
            far = [i for i in hit if docs[i].title.lower() != doc.title.lower()]
            if far:
                other = docs[far[0]]
                pairs.append(Pair(row["question"],
                                  passage_text(other, next(windows(other.text)), rng), 0,
                                  "written-bm25"))
    return pairs


#: how many times the lay pairs are used per epoch (each time with fresh random negatives)
LAY_REPEATS = 2


def build(seed: int = 13) -> tuple[list[Pair], list[Pair]]:
    """Training and dev pairs, deterministic for a seed."""
    rng = random.Random(seed)
    docs = read_medquad()
    train_docs, dev_docs = split_topics(docs, rng)
    train = medquad_pairs(train_docs, rng, per_doc=0.75)
    train += rule_pairs(train_docs, rng, n=4000)
    written = DATA / "written_questions.jsonl"
    # the written questions are repeated: they are the closest to what users ask
    for _ in range(3):
        train += written_pairs(train_docs, rng, written)
    dev = medquad_pairs(dev_docs, rng, per_doc=1.0) + rule_pairs(dev_docs, rng, n=300)
    # the team's lay articles: text shaped like the product's (headings, lists, tables,
    # introductions), repeated like the written questions
    lay_train, lay_dev = split_articles(read_articles(), seed)
    for _ in range(LAY_REPEATS):
        train += [Pair(p.question, p.passage, p.label, p.source)
                  for p in lay_pairs(lay_train, rng)]
    dev += [Pair(p.question, p.passage, p.label, p.source) for p in lay_pairs(lay_dev, rng)]
    rng.shuffle(train)
    return train, dev


if __name__ == "__main__":
    import collections

    tr, dv = build()
    for name, pairs in (("train", tr), ("dev", dv)):
        counts = collections.Counter(p.source for p in pairs)
        print(name, len(pairs), sum(p.label for p in pairs), dict(counts))
