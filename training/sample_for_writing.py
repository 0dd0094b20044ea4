"""Pick the MedQuAD passages that question writers wrote training questions for.

Run once: ``python training/sample_for_writing.py OUT.jsonl``. The chosen passages are
recorded by document ID and offsets in ``training/data/written_questions.jsonl``.
"""

from __future__ import annotations

import json
import random
import sys

from common import dev_topics, read_medquad, squash, windows

CONSUMER = {"MPlusHealthTopics", "NIHSeniorHealth", "NIDDK", "NHLBI", "CDC", "NINDS"}


def main(out: str, n: int = 240, seed: int = 7) -> None:
    rng = random.Random(seed)
    held = dev_topics()
    docs = [d for d in read_medquad() if d.title.lower() not in held and len(d.text) > 200]
    consumer = [d for d in docs if d.source in CONSUMER]
    other = [d for d in docs if d.source not in CONSUMER]
    picked = rng.sample(consumer, int(n * 0.7)) + rng.sample(other, n - int(n * 0.7))
    rng.shuffle(picked)
    with open(out, "w", encoding="utf-8") as fh:
        for d in picked:
            spans = list(windows(d.text))
            start, end = spans[0] if len(spans) == 1 or rng.random() < 0.6 else rng.choice(spans)
            fh.write(json.dumps({"doc_id": d.doc_id, "start": start, "end": end,
                                 "topic": d.title, "qtype": d.qtype,
                                 "passage": squash(d.text[start:end])}) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
