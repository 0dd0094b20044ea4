"""The query path stays light and gives the same answers as the build-time stack.

Asking must not import torch, transformers or sentence-transformers (they cost seconds
per process; see docs/performance.md), nor bm25s/numba (the BM25 index is read with
numpy alone). Nothing here is timed: benchmarks/bench_query.py measures speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from crampqa import CrampQA
from crampqa.embedding import SentenceTransformerEmbedder
from crampqa.lexical import LexicalIndex, SavedBM25, expand_query, tokenize
from crampqa.onnx_encoder import OnnxEncoder
from crampqa.store import current_version
from tests.conftest import CORPUS

#: Never imported while asking: the first three are the torch stack; bm25s pulls in
#: numba and llvmlite (about 0.4 s per process), which the numpy BM25 reader avoids.
HEAVY = ("torch", "transformers", "sentence_transformers", "bm25s", "numba")

QUESTIONS = [
    "why do my calves cramp at night",
    "which blood test shows my real magnesium level",
    "is eating a banana for the potassium really enough to stop cramps?",
    "can low vitamin D cause muscle pain",
    "does B12 deficiency cause tingling and cramps in the legs",
    "how much magnesium should I take",
    "what is the capital of France",
    "magnesum defficiency simptoms",
]


def _run(script: str, cwd: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k not in ("CRAMPQA_CORPUS", "CRAMPQA_INDEX")}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_api_ask_imports_no_torch_stack(real_index: Path, tmp_path: Path) -> None:
    result = _run(f"""
        import json, sys
        from crampqa import CrampQA
        qa = CrampQA.open({str(CORPUS)!r}, {str(real_index)!r}, auto_build=False)
        answer = qa.ask("why do my calves cramp at night", k=5)
        assert answer.passages and not answer.abstained
        print(json.dumps({{"heavy": sorted(m for m in {HEAVY!r} if m in sys.modules),
                          "encoder": type(qa.retriever.encoder).__name__}}))
    """, tmp_path)
    assert result == {"heavy": [], "encoder": "OnnxEncoder"}


def test_cli_ask_json_imports_no_torch_stack(real_index: Path, tmp_path: Path) -> None:
    result = _run(f"""
        import contextlib, io, json, sys
        from crampqa.cli import main
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            main(["ask", "which blood test shows my real magnesium level", "--json",
                  "--corpus", {str(CORPUS)!r}, "--index", {str(real_index)!r}])
        answer = json.loads(buffer.getvalue())
        assert answer["passages"], answer
        print(json.dumps({{"heavy": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
    """, tmp_path)
    assert result == {"heavy": []}


@pytest.fixture(scope="module")
def st_qa(real_index: Path) -> CrampQA:
    """The same index, with questions embedded by sentence-transformers (torch)."""
    return CrampQA.open(CORPUS, real_index, auto_build=False,
                        query_encoder=SentenceTransformerEmbedder())


@pytest.mark.parametrize("question", QUESTIONS)
def test_onnx_and_sentence_transformers_give_the_same_top5(
    real_qa: CrampQA, st_qa: CrampQA, question: str
) -> None:
    assert isinstance(real_qa.retriever.encoder, OnnxEncoder)
    fast, reference = real_qa.ask(question, k=5), st_qa.ask(question, k=5)
    assert [p.source_id for p in fast.passages] == [p.source_id for p in reference.passages]
    assert fast.abstained == reference.abstained
    for a, b in zip(fast.passages, reference.passages, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-4)


def test_numpy_bm25_reader_scores_exactly_like_bm25s(real_index: Path) -> None:
    import bm25s

    folder = current_version(real_index)
    assert folder is not None
    ours = SavedBM25.open(folder / "bm25")
    assert ours is not None
    theirs = bm25s.BM25.load(str(folder / "bm25"), mmap=True, allow_pickle=False,
                             show_progress=False)
    assert ours.vocab_dict == theirs.vocab_dict
    assert isinstance(LexicalIndex.load(folder / "bm25")._retriever, SavedBM25)
    words = [w for w in ours.vocab_dict if w]  # bm25s adds "" with an ID past the matrix
    queries = [tokenize(expand_query(q)) for q in QUESTIONS]
    queries += [words[:1], words[-3:], words[5:40:3] * 2, words]  # repeats count twice
    for tokens in queries:
        known = [t for t in tokens if t in ours.vocab_dict]
        if not known:
            continue
        got, want = ours.get_scores(known), theirs.get_scores(known)
        assert got.dtype == want.dtype
        assert np.array_equal(got, want), tokens
    if "" in ours.vocab_dict:  # both refuse a token outside the matrix
        for scorer in (ours, theirs):
            with pytest.raises(ValueError):
                scorer.get_scores(["cramp", ""])


def test_one_onnx_thread_gives_bit_identical_vectors(real_index: Path) -> None:
    folder = current_version(real_index)
    assert folder is not None
    one, two = OnnxEncoder(folder / "encoder"), OnnxEncoder(folder / "encoder", threads=2)
    assert one.threads == 1
    for question in QUESTIONS:
        assert np.array_equal(one.encode([question]), two.encode([question])), question
    assert np.array_equal(one.encode(QUESTIONS), two.encode(QUESTIONS))


def test_index_arrays_are_mapped_views_not_memmaps(real_qa: CrampQA) -> None:
    data = real_qa.data
    arrays = {"passages": data.passages.array, "sentences": data.sentences,
              "embeddings": data.embeddings, "sentence_embeddings": data.sentence_embeddings}
    for name, array in arrays.items():
        assert type(array) is np.ndarray, name
        assert not array.flags.owndata and not array.flags.writeable, name
