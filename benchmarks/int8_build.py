"""Could a build embed with int8 weights? Speed and answers of an int8 copy of the build
encoder against the float one it ships with.

1. Quantises the default index's exported encoder (onnxruntime dynamic quantisation,
   int8 weights) into ``--work``.
2. Speed: embeds MedQuAD passages (the first 600 characters of every 40th answer) and
   their sentences with the float and the int8 encoder, alternated for ``--rounds``
   rounds in one process, with the build's batching; reports the medians and the cosine
   of each int8 vector to its float one.
3. Answers: builds the five articles with the int8 encoder in place of the build's, and
   evaluates ``default`` and ``fast`` on every question set: the shipped index, the int8
   index asked with the float query encoder ("int8 passages"), and with the int8 one
   ("int8 both"). Only the tuning sets may decide::

    .venv/bin/python benchmarks/int8_build.py
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from question_sets import MEASURES, SETS, label, measure_sets  # this folder

from crampqa import CrampQA
from crampqa import embedding as embedding_module
from crampqa.config import MODEL_NAME, PROJECT_ROOT
from crampqa.embedding import ONNX_BUILD_MAX_TEXTS, ONNX_BUILD_TOKENS
from crampqa.onnx_encoder import OnnxEncoder

MEDQUAD = PROJECT_ROOT.parent / "shared" / "datasets" / "medquad" / "corpus.jsonl.gz"


def quantise(work: Path) -> tuple[Path, Path]:
    """The default index's float encoder folder, and an int8 copy of it in ``work``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = PROJECT_ROOT / "indexes" / "default"
    source = root / (root / "CURRENT").read_text(encoding="utf-8").strip() / "encoder"
    target = work / "int8-encoder"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for f in source.iterdir():
        if f.name != "model.onnx":
            shutil.copy(f, target / f.name)
    quantize_dynamic(str(source / "model.onnx"), str(target / "model.onnx"),
                     weight_type=QuantType.QInt8)
    return source, target


def speed(float_dir: Path, int8_dir: Path, rounds: int) -> dict[str, Any]:
    """Median seconds to embed the same passages and sentences, float against int8."""
    docs: list[str] = []
    with gzip.open(MEDQUAD, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i % 40 == 0:
                docs.append(json.loads(line)["text"])
            if len(docs) >= 300:
                break
    passages = [d[:600] for d in docs]
    sentences = [s for d in passages for s in d.split(". ") if len(s) > 20]
    encoders = {"float": OnnxEncoder(float_dir, threads=2), "int8": OnnxEncoder(int8_dir,
                                                                                 threads=2)}
    times: dict[str, list[float]] = {name: [] for name in encoders}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(rounds):
        for name, encoder in encoders.items():
            started = time.perf_counter()
            a = encoder.encode(passages, batch_size=ONNX_BUILD_MAX_TEXTS,
                               max_tokens=ONNX_BUILD_TOKENS)
            b = encoder.encode(sentences, batch_size=ONNX_BUILD_MAX_TEXTS,
                               max_tokens=ONNX_BUILD_TOKENS)
            times[name].append(time.perf_counter() - started)
            vectors[name] = np.vstack([a, b])
    cosine = (vectors["float"] * vectors["int8"]).sum(axis=1)
    return {"texts": len(passages) + len(sentences),
            "median_s": {n: statistics.median(t) for n, t in times.items()},
            "cosine_mean": float(cosine.mean()), "cosine_min": float(cosine.min())}


def answers(int8_dir: Path, work: Path) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """Every set's measures for the three variants, by variant."""
    index = work / "int8-index"
    shutil.rmtree(index, ignore_errors=True)
    original = embedding_module.OnnxBuildEmbedder.__init__

    def with_int8(self: Any, inner: Any, folder: Path, threads: int | None = None) -> None:
        original(self, inner, folder, threads)
        self._encoder = OnnxEncoder(int8_dir, threads=threads, name=inner.name)

    embedding_module.OnnxBuildEmbedder.__init__ = with_int8  # type: ignore[method-assign]
    try:
        CrampQA.build(PROJECT_ROOT / "corpus", index, progress=False)
    finally:
        embedding_module.OnnxBuildEmbedder.__init__ = original  # type: ignore[method-assign]
    variants = {
        "float": CrampQA.open(),
        "int8 passages": CrampQA.open(PROJECT_ROOT / "corpus", index, auto_build=False),
        "int8 both": CrampQA.open(PROJECT_ROOT / "corpus", index, auto_build=False,
                                  query_encoder=OnnxEncoder(int8_dir, name=MODEL_NAME)),
    }
    return {name: measure_sets(qa, ["default", "fast"]) for name, qa in variants.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/crampqa-int8"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    float_dir, int8_dir = quantise(args.work)
    timing = speed(float_dir, int8_dir, args.rounds)
    print(f"{timing['texts']} texts: float {timing['median_s']['float']:.1f} s, int8 "
          f"{timing['median_s']['int8']:.1f} s (median of {args.rounds}); cosine int8 to "
          f"float mean {timing['cosine_mean']:.3f}, min {timing['cosine_min']:.3f}")
    table = answers(int8_dir, args.work)
    print("| set | config | variant | " + " | ".join(MEASURES) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in MEASURES) + " |")
    for name in SETS:
        for config in ("default", "fast"):
            for variant, by_set in table.items():
                cells = " | ".join(f"{by_set[name][config][m]:.3f}" for m in MEASURES)
                print(f"| {label(name)} | {config} | {variant} | {cells} |")


if __name__ == "__main__":
    main()
