"""Issue #6 on small generated folders: inputs, incremental indexing, ANN index types.

Driven through the CLI (``crampqa.cli.main`` in-process) and the Python API, with the fake
embedder of tests/conftest.py mapped to the default model name, so nothing here loads the
real model.

Covered elsewhere and not repeated here: binary, zero-byte and blank files, other text
encodings and symlinks (tests/test_hardening.py); incremental counts on the real corpus,
reuse of unchanged vectors and the chunker-change reason through the API, a failed build
leaving the previous index (tests/test_store.py); a model change through ``crampqa ask``
(tests/test_hardening.py::test_index_built_with_another_model).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crampqa import CrampQA
from crampqa import dense as dense_mod
from crampqa.config import MODEL_NAME, ChunkSettings, IndexSettings
from crampqa.corpus import html_to_text
from crampqa.dense import DenseIndex
from crampqa.store import current_version, load_version
from tests.conftest import FakeDefaultEmbedder, FakeEmbedder, run_main

# ---- helpers ---------------------------------------------------------------------------


pytestmark = pytest.mark.usefixtures("fake_default_model")


def cli(*args: str | Path) -> tuple[int, str, list[str]]:
    """``crampqa ARGS`` in this process: (exit code, stdout, stderr lines)."""
    code, out, err = run_main(*args)
    return code, out, err.strip().splitlines()


def index(corpus: Path, idx: Path, *extra: str) -> list[str]:
    """``crampqa index``; asserts success and returns the stderr lines."""
    code, _, err = cli("index", "--corpus", corpus, "--index", idx, *extra)
    assert code == 0, err
    assert not any("Traceback" in line for line in err)
    return err


def summary_line(err: list[str]) -> str:
    lines = [line for line in err if line.startswith("Indexed ")]
    assert len(lines) == 1, err
    return lines[0]


def ask(corpus: Path, idx: Path, question: str, k: int = 3) -> dict[str, Any]:
    code, out, err = cli("ask", question, "--json", "-k", str(k), "--index", idx,
                         "--corpus", corpus)
    assert code == 0, err
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


HTML = """<!doctype html>
<html><head><title>Night cramps leaflet</title>
<style>.warn { color: red }</style>
<script>var zorblaxscript = "never shown";</script></head>
<body><nav>Home</nav>
<h1>Night cramps</h1>
<p>Quinine is <b>no longer</b> advised for ordinary night cramps.</p>
<ul><li>Stretch the calf before bed.</li><li>Drink enough water.</li></ul>
<script>hiddenscriptword();</script><noscript>Enable noscriptword</noscript>
<table><tr><th>Mineral</th><th>Food</th></tr><tr><td>Magnesium</td><td>Spinach</td></tr></table>
</body></html>
"""


def mixed_tree(root: Path) -> Path:
    """Nested .txt/.md/.html files, two with the same stem."""
    write(root / "calf.txt", "Calf cramps\n\nA calf cramp is a sudden painful tightening "
          "of the calf muscle. Stretching the calf usually helps within minutes.\n")
    write(root / "minerals" / "magnesium.md", "# Magnesium\n\nMagnesium helps muscles "
          "relax after they contract. Nuts, seeds and spinach contain magnesium.\n")
    write(root / "minerals" / "deep" / "potassium.txt", "Potassium\n\nBananas and beans are "
          "good sources of potassium, an electrolyte muscles need.\n")
    write(root / "leaflets" / "night.html", HTML)
    write(root / "leaflets" / "night.md", "# Night cramps (notes)\n\nWriter's notes on "
          "sleep position and bedding that presses the toes down.\n")
    return root


# ---- inputs ----------------------------------------------------------------------------


def test_mixed_tree_gets_stable_relative_path_ids(tmp_path: Path) -> None:
    corpus, idx = mixed_tree(tmp_path / "corpus"), tmp_path / "index"
    err = index(corpus, idx)
    assert summary_line(err).startswith("Indexed 5 documents")
    code, out, _ = cli("sources", "--json", "--index", idx, "--corpus", corpus)
    assert code == 0
    ids = {d["doc_id"]: d["path"] for d in json.loads(out)}
    # relative path without suffix; the same stem with two suffixes keeps the suffix
    assert ids == {
        "calf": "calf.txt",
        "minerals/magnesium": "minerals/magnesium.md",
        "minerals/deep/potassium": "minerals/deep/potassium.txt",
        "leaflets/night.html": "leaflets/night.html",
        "leaflets/night.md": "leaflets/night.md",
    }
    answer = ask(corpus, idx, "bananas potassium electrolyte", k=1)
    assert answer["passages"][0]["doc_id"] == "minerals/deep/potassium"
    assert answer["passages"][0]["source_id"].startswith("minerals/deep/potassium#")

    # a new file elsewhere in the tree changes no existing ID
    write(corpus / "aaa" / "first.txt", "Hydration\n\nDrink water during long runs.\n")
    err = index(corpus, idx)
    assert "(1 added, 0 changed, 5 unchanged, 0 removed" in summary_line(err)
    qa = CrampQA.open(corpus, idx)
    assert {s["doc_id"] for s in qa.sources()} == set(ids) | {"aaa/first"}
    assert qa.ask("bananas potassium electrolyte", k=1).passages[0].doc_id == \
        "minerals/deep/potassium"


def test_html_visible_text_is_extracted_stored_and_cited_exactly(tmp_path: Path) -> None:
    corpus, idx = tmp_path / "corpus", tmp_path / "index"
    write(corpus / "leaflet.html", HTML)
    write(corpus / "other.txt", "Spinach\n\nSpinach is a leafy vegetable.\n")
    index(corpus, idx)
    qa = CrampQA.open(corpus, idx)
    text = qa.document_text("leaflet")
    assert text == html_to_text(HTML)[0]
    assert "Quinine is no longer advised for ordinary night cramps." in text
    assert "Stretch the calf before bed." in text
    for hidden in ("<", "zorblaxscript", "hiddenscriptword", "noscriptword", "color: red"):
        assert hidden not in text
    assert {s["doc_id"]: s["title"] for s in qa.sources()}["leaflet"] == "Night cramps leaflet"
    # the extracted text is what the index stores, so citations can be checked later
    stored = {}
    folder = current_version(idx)
    assert folder is not None
    for line in (folder / "documents.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        stored[row["doc_id"]] = row["text"]
    assert stored["leaflet"] == text
    answer = ask(corpus, idx, "is quinine advised for night cramps", k=3)
    top = answer["passages"][0]
    assert top["doc_id"] == "leaflet" and "Quinine is no longer advised" in top["text"]
    for p in answer["passages"]:
        assert p["text"] == stored[p["doc_id"]][p["start"] : p["end"]]
        for lo, hi in p["highlights"]:
            assert p["start"] <= lo < hi <= p["end"]
    # words that only occur in scripts are not searchable
    data = load_version(folder)
    every = " ".join(data.passages.text(r) for r in range(len(data.passages)))
    assert "hiddenscriptword" not in every and "zorblaxscript" not in every


def test_skipped_files_get_one_line_each_and_are_counted(tmp_path: Path) -> None:
    corpus, idx = mixed_tree(tmp_path / "corpus"), tmp_path / "index"
    write(corpus / "minerals" / "scan.pdf", b"%PDF-1.4 binary")
    write(corpus / "minerals" / "deep" / "empty.md", b"")
    write(corpus / "leaflets" / "broken.txt", b"abc\x00\x01\x02def")
    write(corpus / "leaflets" / "blank.html", "<html><script>x()</script></html>")
    err = index(corpus, idx)
    skipped = sorted(line for line in err if line.startswith("skipped "))
    assert skipped == [
        "skipped leaflets/blank.html: no visible text",
        "skipped leaflets/broken.txt: not text (binary data (NUL bytes))",
        "skipped minerals/deep/empty.md: empty file",
        "skipped minerals/scan.pdf: unsupported file type '.pdf'",
    ]
    assert "4 files skipped" in summary_line(err)
    assert summary_line(err).startswith("Indexed 5 documents")
    manifest = load_version(current_version(idx)).manifest  # type: ignore[arg-type]
    assert len(manifest.corpus.skipped) == 4
    summary = CrampQA.build(corpus, tmp_path / "api", settings=IndexSettings())
    assert sorted(path for path, _ in summary.skipped) == [
        "leaflets/blank.html", "leaflets/broken.txt", "minerals/deep/empty.md",
        "minerals/scan.pdf"]
    assert summary.documents == 5


# ---- incremental indexing --------------------------------------------------------------


def test_incremental_summary_and_only_new_or_changed_documents_are_embedded(
        tmp_path: Path) -> None:
    corpus, idx = mixed_tree(tmp_path / "corpus"), tmp_path / "index"
    err = index(corpus, idx)
    assert "(5 added, 0 changed, 0 unchanged, 0 removed; 0 files skipped)" in summary_line(err)

    write(corpus / "calf.txt", "Calf cramps\n\nZorblax stretches are the new advice for "
          "calf cramps.\n")  # changed
    (corpus / "minerals" / "deep" / "potassium.txt").unlink()  # removed
    write(corpus / "new" / "sodium.md", "# Sodium\n\nSalt loss in sweat: quorvex.\n")  # added
    FakeDefaultEmbedder.seen = []
    err = index(corpus, idx)
    assert "(1 added, 1 changed, 3 unchanged, 1 removed; 0 files skipped)" in \
        summary_line(err)
    assert "Indexed 5 documents" in summary_line(err)
    assert not any(line.startswith("Full rebuild") for line in err)
    embedded = " ".join(FakeDefaultEmbedder.seen)
    assert "Zorblax" in embedded and "quorvex" in embedded
    for untouched in ("Magnesium helps", "Quinine", "Writer's notes", "Bananas"):
        assert untouched not in embedded

    answer = ask(corpus, idx, "zorblax stretches", k=1)
    assert answer["passages"][0]["doc_id"] == "calf"
    code, out, _ = cli("sources", "--json", "--index", idx, "--corpus", corpus)
    assert code == 0
    assert "minerals/deep/potassium" not in {d["doc_id"] for d in json.loads(out)}

    # nothing changed: everything is reused, nothing embedded
    FakeDefaultEmbedder.seen = []
    err = index(corpus, idx)
    assert "(0 added, 0 changed, 5 unchanged, 0 removed" in summary_line(err)
    assert FakeDefaultEmbedder.seen == []


def test_chunker_or_model_change_forces_a_full_rebuild_with_one_line(
        tmp_path: Path, fake_settings: IndexSettings) -> None:
    corpus, idx = mixed_tree(tmp_path / "corpus"), tmp_path / "index"
    CrampQA.build(corpus, idx, settings=IndexSettings(chunk=ChunkSettings(max_chars=200)))
    FakeDefaultEmbedder.seen = []
    err = index(corpus, idx)  # the CLI's default chunker
    assert [line for line in err if line.startswith("Full rebuild")] == [
        "Full rebuild: the chunker settings changed."]
    assert "(5 added, 0 changed, 0 unchanged, 0 removed" in summary_line(err)
    assert "Magnesium helps" in " ".join(FakeDefaultEmbedder.seen)

    summary = CrampQA.build(corpus, idx, settings=fake_settings, embedder=FakeEmbedder())
    assert summary.full_rebuild_reason == \
        f"the model changed ({MODEL_NAME} -> {fake_settings.model})"
    assert summary.added == 5 and summary.unchanged == 0


# ---- ANN index types -------------------------------------------------------------------


def test_ann_hnsw_is_selectable_recorded_and_answers_like_flat(tmp_path: Path) -> None:
    corpus = mixed_tree(tmp_path / "corpus")
    flat, hnsw = tmp_path / "flat", tmp_path / "hnsw"
    index(corpus, flat, "--ann", "flat")
    index(corpus, hnsw, "--ann", "hnsw")
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
    code, out, _ = cli("info", "--index", hnsw, "--corpus", corpus)
    assert code == 0 and json.loads(out)["settings"]["ann"] == "hnsw"
    assert json.loads(out)["dense"]["type"] == "hnsw"
    for question in ("calf cramp stretching", "magnesium nuts seeds", "quinine night cramps",
                     "bananas potassium", "bedding presses the toes"):
        a = ask(corpus, flat, question, k=5)["passages"]
        b = ask(corpus, hnsw, question, k=5)["passages"]
        assert [(p["source_id"], p["score"]) for p in a] == \
            [(p["source_id"], p["score"]) for p in b]
    # switching the type re-embeds nothing (the vectors are reused)
    FakeDefaultEmbedder.seen = []
    index(corpus, hnsw, "--ann", "flat")
    assert FakeDefaultEmbedder.seen == []
    assert DenseIndex.load(current_version(hnsw) / "dense.faiss").kind == "flat"  # type: ignore[operator]


def test_ann_auto_is_the_default_and_switches_at_the_threshold(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = mixed_tree(tmp_path / "corpus")
    passages = len(CrampQA.open(corpus, tmp_path / "probe").data.passages)
    monkeypatch.setattr(dense_mod, "HNSW_THRESHOLD", passages - 1)
    index(corpus, tmp_path / "above")  # "auto" is the default
    monkeypatch.setattr(dense_mod, "HNSW_THRESHOLD", passages)
    index(corpus, tmp_path / "at", "--ann", "auto")
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


# ---- BEIR input ------------------------------------------------------------------------


def write_beir(path: Path, docs: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for doc in docs:
            fh.write(json.dumps(doc) + "\n")


def test_beir_corpus_jsonl_gz_is_indexed_and_updated_incrementally(tmp_path: Path) -> None:
    corpus, idx = tmp_path / "beir", tmp_path / "index"
    docs = [
        {"_id": "d1", "title": "Leg cramps", "text": "Leg cramps often strike at night."},
        {"_id": "d2", "title": "", "text": "Magnesium glycinate is gentle on the stomach."},
        {"_id": "d3", "title": "Potassium", "text": "Bananas contain potassium."},
    ]
    write_beir(corpus / "corpus.jsonl.gz", docs)
    write(corpus / "queries.jsonl", '{"_id": "q1", "text": "leg cramps"}\n')
    err = index(corpus, idx)
    assert "Indexed 3 documents" in summary_line(err)
    qa = CrampQA.open(corpus, idx)
    assert {s["doc_id"] for s in qa.sources()} == {"d1", "d2", "d3"}
    assert qa.document_text("d1") == "Leg cramps\n\nLeg cramps often strike at night."
    assert qa.document_text("d2") == "Magnesium glycinate is gentle on the stomach."
    answer = ask(corpus, idx, "magnesium glycinate stomach", k=2)
    assert answer["passages"][0]["doc_id"] == "d2"
    for p in answer["passages"]:
        assert p["text"] == qa.document_text(p["doc_id"])[p["start"] : p["end"]]

    docs[2]["text"] = "Bananas and dried apricots contain potassium."
    docs.append({"_id": "d4", "title": "Sodium", "text": "Sweat carries salt away."})
    write_beir(corpus / "corpus.jsonl.gz", [docs[0], docs[2], docs[3]])  # d2 removed
    FakeDefaultEmbedder.seen = []
    err = index(corpus, idx)
    assert "(1 added, 1 changed, 1 unchanged, 1 removed" in summary_line(err)
    assert "apricots" in " ".join(FakeDefaultEmbedder.seen)
    assert "strike at night" not in " ".join(FakeDefaultEmbedder.seen)


class ExportingEmbedder(FakeEmbedder):
    """A fake embedder with an ONNX-export step, to count exports."""

    exports = 0

    def export(self, folder: Path) -> None:
        ExportingEmbedder.exports += 1
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"fake onnx export")


def test_unchanged_model_reuses_the_previous_query_encoder_export(tmp_path: Path) -> None:
    corpus, idx = mixed_tree(tmp_path / "corpus"), tmp_path / "index"
    ExportingEmbedder.exports = 0
    CrampQA.build(corpus, idx, embedder=ExportingEmbedder())
    first = current_version(idx)
    write(corpus / "calf.txt", "Calf cramps\n\nChanged text about calf cramps.\n")
    summary = CrampQA.build(corpus, idx, embedder=ExportingEmbedder())
    second = current_version(idx)
    assert summary.changed == 1 and first != second
    assert ExportingEmbedder.exports == 1  # copied, not exported again
    assert (second / "encoder" / "model.onnx").read_bytes() == b"fake onnx export"  # type: ignore[operator]
    CrampQA.build(corpus, idx, embedder=ExportingEmbedder(), rebuild=True)
    assert ExportingEmbedder.exports == 2  # a full rebuild exports afresh
