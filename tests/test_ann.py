"""Dense index types: flat, HNSW and auto, recorded in the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crampqa import CrampQA
from crampqa import dense as dense_mod
from crampqa.config import IndexSettings
from crampqa.dense import DenseIndex
from crampqa.store import current_version, load_version
from tests.conftest import FakeDefaultEmbedder
from tests.support import ask_json, cli_lines, mixed_tree, run_index

pytestmark = pytest.mark.usefixtures("fake_default_model")


# ---- ANN index types -------------------------------------------------------------------


def test_ann_hnsw_is_selectable_recorded_and_answers_like_flat(tmp_path: Path) -> None:
    corpus = mixed_tree(tmp_path / "corpus")
    flat, hnsw = tmp_path / "flat", tmp_path / "hnsw"
    run_index(corpus, flat, "--ann", "flat")
    run_index(corpus, hnsw, "--ann", "hnsw")
    for root, kind in ((flat, "flat"), (hnsw, "hnsw")):
        folder = current_version(root)
        assert folder is not None
        assert load_version(folder).manifest.settings.ann == kind
        described = DenseIndex.load(folder / "dense.faiss").describe()
        assert described["type"] == kind
        assert load_version(folder).manifest.dense == described  # what was built
    described = DenseIndex.load(current_version(hnsw) / "dense.faiss").describe()  # type: ignore[operator]
    assert (described["M"], described["efConstruction"], described["efSearch"]) == (
        dense_mod.HNSW_M, dense_mod.HNSW_EF_CONSTRUCTION, dense_mod.HNSW_EF_SEARCH)
    code, out, _ = cli_lines("info", "--json", "--index", hnsw, "--corpus", corpus)
    assert code == 0 and json.loads(out)["settings"]["ann"] == "hnsw"
    assert json.loads(out)["dense"]["type"] == "hnsw"
    for question in ("calf cramp stretching", "magnesium nuts seeds", "quinine night cramps",
                     "bananas potassium", "bedding presses the toes"):
        a = ask_json(corpus, flat, question, k=5)["passages"]
        b = ask_json(corpus, hnsw, question, k=5)["passages"]
        assert [(p["source_id"], p["score"]) for p in a] == \
            [(p["source_id"], p["score"]) for p in b]
    # switching the type re-embeds nothing (the vectors are reused)
    FakeDefaultEmbedder.seen = []
    run_index(corpus, hnsw, "--ann", "flat")
    assert FakeDefaultEmbedder.seen == []
    assert DenseIndex.load(current_version(hnsw) / "dense.faiss").kind == "flat"  # type: ignore[operator]


def test_ann_auto_is_the_default_and_switches_at_the_threshold(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = mixed_tree(tmp_path / "corpus")
    passages = len(CrampQA.open(corpus, tmp_path / "probe").data.passages)
    monkeypatch.setattr(dense_mod, "HNSW_THRESHOLD", passages - 1)
    run_index(corpus, tmp_path / "above")  # "auto" is the default
    monkeypatch.setattr(dense_mod, "HNSW_THRESHOLD", passages)
    run_index(corpus, tmp_path / "at", "--ann", "auto")
    for name, kind in (("above", "hnsw"), ("at", "flat")):
        folder = current_version(tmp_path / name)
        assert folder is not None
        assert load_version(folder).manifest.settings.ann == "auto"
        assert DenseIndex.load(folder / "dense.faiss").kind == kind


def test_hnsw_equals_flat_on_a_small_clustered_set() -> None:
    """At a few thousand vectors the product's HNSW parameters return the exact top 10."""
    import faiss

    rng = np.random.default_rng(7)
    centres = rng.standard_normal((40, 64)).astype(np.float32)
    x = centres[rng.integers(0, 40, 3000)] + 0.4 * rng.standard_normal((3000, 64),
                                                                      dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    queries, base = x[:100], x[100:]
    flat, hnsw = DenseIndex.build(base, "flat"), DenseIndex.build(base, "hnsw")
    assert (flat.kind, hnsw.kind, hnsw.size) == ("flat", "hnsw", len(base))
    threads = faiss.omp_get_max_threads()
    for q in queries:
        exact_rows, exact_scores = flat.search(q, 10)
        rows, scores = hnsw.search(q, 10)
        assert rows.tolist() == exact_rows.tolist()
        np.testing.assert_allclose(scores, exact_scores, rtol=1e-5)
    assert faiss.omp_get_max_threads() == threads  # searching restores the thread count
    k = IndexSettings().retrieval.dense_candidates  # what a question asks for
    assert len(hnsw.search(queries[0], k)[0]) == k
    with pytest.raises(Exception, match="Unknown --ann 'ivfpq'"):
        DenseIndex.build(base, "ivfpq")
