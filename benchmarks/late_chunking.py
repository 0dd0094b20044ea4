"""Could a build skip embedding sentences? Sentence vectors pooled from the token states of
their passage's own run ("late chunking"), against the embedded ones, on every question set.

A build embeds each passage, then each of its sentences again on its own (with a list's
introduction before it): about 45 % of a build's time (docs/performance.md). Late chunking
would take a sentence's vector from the passage run the build already makes: the mean of
the final token states that fall inside the sentence, normalised. Nothing extra is embedded.

This opens the default index, replaces its sentence vectors in memory with late-chunked
ones, and evaluates ``default`` and ``fast`` on the question sets before and after, in one
process. Only the tuning sets (``questions``, ``dev``, ``dev2``) may decide whether to
adopt it; the others are reported, never chosen on::

    .venv/bin/python benchmarks/late_chunking.py
    .venv/bin/python benchmarks/late_chunking.py --json > late.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from question_sets import MEASURES, SETS, label, measure_sets  # this folder

from crampqa import CrampQA
from crampqa.onnx_encoder import OnnxEncoder

CONFIGS = ["default", "fast"]


def late_sentence_vectors(qa: CrampQA) -> tuple[np.ndarray, float]:
    """Sentence vectors pooled from each passage's run, and the seconds that took."""
    data = qa.data
    encoder = OnnxEncoder(Path(data.folder) / "encoder")
    encoder.load()
    # the encoder's tokenizer and session: a benchmark may read what the product hides
    tokenizer, session = encoder._tokenizer, encoder._session
    table = data.passages
    sentences = np.asarray(data.sentences)
    out = np.asarray(data.sentence_embeddings, dtype=np.float32).copy()
    started = time.perf_counter()
    for row in range(len(data.embeddings)):
        text = table.indexed_text(row)
        start, end = table.span(row)
        prefix = len(text) - (end - start)  # the passage is the end of its indexed text
        enc = tokenizer.encode(text)
        ids = np.asarray(enc.ids, dtype=np.int64)[None, :]
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if "token_type_ids" in encoder._input_names:
            feed["token_type_ids"] = np.zeros_like(ids)
        (hidden,) = session.run([encoder._config["output"]], feed)
        states = np.asarray(hidden[0], dtype=np.float32)
        lo, hi = np.searchsorted(sentences[:, 0], [row, row + 1])
        for s in range(int(lo), int(hi)):
            a = prefix + int(sentences[s, 1]) - start
            b = prefix + int(sentences[s, 2]) - start
            tokens = [i for i, (x, y) in enumerate(enc.offsets)
                      if not enc.special_tokens_mask[i] and x < b and y > a]
            if tokens:  # a sentence cut off by the model's length limit keeps its vector
                v = states[tokens].mean(axis=0)
                out[s] = v / np.linalg.norm(v)
    return out, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args()
    qa = CrampQA.open()
    embedded = measure_sets(qa, CONFIGS)
    late, seconds = late_sentence_vectors(qa)
    cosine = float((late * np.asarray(qa.data.sentence_embeddings)).sum(axis=1).mean())
    object.__setattr__(qa.data, "sentence_embeddings", late)
    pooled = measure_sets(qa, CONFIGS)
    if args.json:
        print(json.dumps({"embedded": embedded, "late": pooled, "mean_cosine": cosine,
                          "pooling_seconds": seconds}, indent=1))
        return
    print(f"{len(late)} sentences pooled in {seconds:.1f} s; mean cosine to the embedded "
          f"vectors {cosine:.3f}")
    print("| set | config | hit@1 | hit@3 | MRR@10 | correct abstention | false abstention |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in SETS:
        for config in CONFIGS:
            cells = [f"{embedded[name][config][m]:.3f} → {pooled[name][config][m]:.3f}"
                     for m in MEASURES]
            print(f"| {label(name)} | {config} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
