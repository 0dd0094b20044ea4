"""Whole-document evidence: titles, document vectors, the naive reference ranking and the
step that adds document vectors to an index built without them."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from crampqa import CrampQA
from crampqa.corpus import Document
from crampqa.documents import (
    DOC_BM25,
    DOC_VECTORS,
    TITLE_VECTORS,
    DocumentLevel,
    DocumentWeights,
    has_title,
    whole_text,
)
from crampqa.errors import EvalError, IndexError_
from crampqa.evaluation.runner import evaluate_beir, evaluate_path, prepare_beir
from crampqa.indexing import add_document_level
from crampqa.manifest import MANIFEST, seal
from crampqa.store import VERIFIED_DIR, current_version, load_version
from tests.conftest import FAKE_MODEL, FakeEmbedder, run_main
from tests.test_eval import FILLERS, write_beir

QUESTIONS = ("why do my calves cramp at night", "which blood test shows my magnesium level",
             "is vitamin d linked to cramps")


class RecordingEmbedder(FakeEmbedder):
    """The fake embedder, remembering what it embedded; fails after ``fail_after`` texts."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.seen: list[str] = []
        self.fail_after = fail_after

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        self.seen.extend(texts)
        if self.fail_after is not None and len(self.seen) > self.fail_after:
            raise RuntimeError("killed mid-way")
        return super().encode(texts, batch_size)


def strip_document_level(index: Path) -> Path:
    """Turn the current version into one written before document vectors existed."""
    folder = current_version(index)
    assert folder is not None
    for name in (DOC_VECTORS, TITLE_VECTORS):
        (folder / name).unlink()
    for path in sorted((folder / DOC_BM25).iterdir()):
        path.unlink()
    (folder / DOC_BM25).rmdir()
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    del manifest["document_level"]
    manifest["files"] = {rel: info for rel, info in manifest["files"].items()
                         if not rel.startswith((DOC_VECTORS, TITLE_VECTORS, DOC_BM25))}
    (folder / MANIFEST).write_bytes(seal(manifest))
    (index / VERIFIED_DIR / f"{folder.name}.json").unlink(missing_ok=True)
    return folder


@pytest.fixture
def beir_docs(tmp_path: Path) -> Path:
    folder = write_beir(tmp_path / "tinybeir")
    with (folder / "corpus.jsonl").open("a", encoding="utf-8") as handle:
        for doc_id, title, text in FILLERS:
            handle.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
        handle.write(json.dumps({"_id": "u1", "title": "", "text": "An untitled note on "
                                 "ankle sprains and ice."}) + "\n")
    return folder


def open_fake(corpus: Path, index: Path, fake_settings: object) -> CrampQA:
    return CrampQA.open(corpus, index, settings=fake_settings,  # type: ignore[arg-type]
                        embedder=FakeEmbedder())


# ---- the title --------------------------------------------------------------------------


def test_whole_text_puts_the_title_first_once() -> None:
    article = Document("a", "Night cramps", "Stretch your calves before bed.", "x")
    assert whole_text(article) == "Night cramps\n\nStretch your calves before bed."
    beir = Document("b", "Magnesium", "Magnesium\n\nMagnesium helps muscles relax.", "y")
    assert whole_text(beir) == beir.text  # a BEIR text already starts with its title
    untitled = Document("u1", "u1", "An untitled note.", "z")  # titled by its ID
    assert not has_title(untitled) and whole_text(untitled) == untitled.text


def test_build_writes_document_and_title_vectors(beir_docs: Path, tmp_path: Path,
                                                 fake_settings: object) -> None:
    qa = open_fake(beir_docs, tmp_path / "idx", fake_settings)
    record = qa.manifest["document_level"]
    assert record["added"] == "index" and record["version"] == 2
    files = qa.manifest["files"]
    assert DOC_VECTORS in files and TITLE_VECTORS in files
    assert any(rel.startswith(DOC_BM25 + "/") for rel in files)
    level = qa.document_level
    assert level is not None
    docs = qa.data.documents
    # a document's vector is its first passage's: nothing more is embedded for it
    first = {}
    for row, doc in enumerate(np.asarray(qa.data.passages.docs)):
        first.setdefault(int(doc), row)
    assert len(first) == len(docs)
    for number, row in first.items():
        assert np.array_equal(level.vectors[number], qa.data.embeddings[row])
    for i, doc in enumerate(docs):
        if has_title(doc):
            assert np.allclose(level.titles[i], FakeEmbedder().encode([doc.title])[0], atol=1e-6)
        else:  # no title: no title evidence
            assert doc.doc_id == "u1" and not level.titles[i].any()
    # memory-mapped, and plain .npy files (no pickle)
    for name in (DOC_VECTORS, TITLE_VECTORS):
        array = np.load(qa.data.folder / name, mmap_mode="r", allow_pickle=False)
        assert array.dtype == np.float32 and array.shape == (len(docs), FakeEmbedder.dim)


def test_title_evidence_ranks_a_document_by_its_title(beir_docs: Path, tmp_path: Path,
                                                      fake_settings: object) -> None:
    qa = open_fake(beir_docs, tmp_path / "idx", fake_settings)
    question = "Shift work"
    docs, _, _ = qa.passage_candidates(question, scorer=False)
    found = qa.document_evidence(question, docs, extra=5)
    assert found is not None
    target = qa.data.doc_index["f07"]  # title "Shift work"
    i = found.docs.tolist().index(target)
    assert found.title[i] == pytest.approx(1.0, abs=1e-5)
    assert found.title[i] == found.title.max()
    ranked = qa.rank_documents(question, 3, scorer=False,
                               weights=DocumentWeights(title=1.0))
    assert ranked[0][0] == "f07"


#: MedQuAD-like documents: one condition per document, titled with its name, the text
#: starting with the title; other documents mention the same condition in passing.
CONDITIONS = [
    ("m1", "Restless legs syndrome", "An urge to move the legs, worst in the evening and at "
     "rest."),
    ("m2", "Iron deficiency", "Low iron gives symptoms such as tiredness and pale skin, and it "
     "can make the symptoms of restless legs syndrome worse."),
    ("m3", "Leg cramps", "A sudden painful tightening of a calf muscle, often at night."),
    ("m4", "Dehydration", "Too little water gives symptoms such as thirst, dizziness and leg "
     "cramps."),
    ("m5", "Peripheral neuropathy", "Damaged nerves cause numbness, tingling and burning in "
     "the feet."),
    ("m6", "Vitamin B12 deficiency", "Too little B12 damages nerves and gives symptoms of "
     "peripheral neuropathy such as tingling."),
]


def test_default_weights_rank_the_document_titled_with_the_condition_first(
    tmp_path: Path, fake_settings: object
) -> None:
    """The index's own document weights (no ``weights=``, the answer scorer on, as
    `crampqa eval` ranks a BEIR folder): the document titled with the condition a
    question names comes first, above one whose text says more of the question's words.
    It is the title weight that decides (0.5, docs/evaluation.md): without it the other
    document wins."""
    folder = tmp_path / "medquad-like"
    folder.mkdir()
    (folder / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": d, "title": t, "text": x}) + "\n" for d, t, x in CONDITIONS),
        encoding="utf-8")
    qa = open_fake(folder, tmp_path / "idx", fake_settings)
    question = "what are the symptoms of restless legs syndrome"
    ranked = [doc_id for doc_id, _ in qa.rank_documents(question, 3)]
    assert ranked[:2] == ["m1", "m2"]
    # the text alone prefers m2: the title weight is what puts m1 first
    untitled = replace(qa.document_weights(), title=0.0)
    assert qa.rank_documents(question, 3, weights=untitled)[0][0] == "m2"


def test_no_document_weights_rank_documents_by_their_best_passage(
    beir_docs: Path, tmp_path: Path, fake_settings: object
) -> None:
    qa = open_fake(beir_docs, tmp_path / "idx", fake_settings)
    question = "why do I get cramps at night"
    docs, _, _ = qa.passage_candidates(question, scorer=False)
    best = list(dict.fromkeys(qa.data.documents[d].doc_id for d in docs))[:4]
    assert [d for d, _ in qa.rank_documents(question, 4, scorer=False,
                                            weights=DocumentWeights())] == best
    # a tiny passage weight keeps the order: the soft maximum starts from the best passage
    ranked = qa.rank_documents(question, 4, scorer=False,
                               weights=DocumentWeights(passages=1e-9))
    assert [d for d, _ in ranked] == best


# ---- the naive reference ----------------------------------------------------------------


def test_naive_ranks_whole_documents_by_reciprocal_rank(
    beir_docs: Path, tmp_path: Path, fake_settings: object
) -> None:
    qa = open_fake(beir_docs, tmp_path / "idx", fake_settings)
    ranked = qa.rank_documents("bananas potassium electrolyte nerves", 3, naive=True)
    assert ranked[0][0] == "d5"
    # first in both lists: 1/(60 + 1) twice
    assert ranked[0][1] == pytest.approx(2 / 61)
    assert len(ranked) == 3 and ranked[0][1] > ranked[1][1] >= ranked[2][1]


def test_compare_on_a_beir_folder_includes_naive(
    beir_docs: Path, tmp_path: Path, fake_settings: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crampqa.evaluation import runner

    monkeypatch.setattr(runner, "open_index",
                        lambda corpus, index, progress=None: open_fake(beir_docs, tmp_path / "i",
                                                                       fake_settings))
    result = evaluate_path(beir_docs, compare=True)
    assert [c.name for c in result.configs] == ["dense", "bm25", "hybrid", "fast", "default",
                                                "naive"]
    naive = result.config("naive")
    assert naive.metrics["nDCG@10"] > 0 and set(naive.run) == set(result.qrels)


def test_naive_is_refused_for_a_question_set(fake_qa: CrampQA) -> None:
    from crampqa.evaluation.datasets import Question
    from crampqa.evaluation.runner import evaluate_questions

    questions = [Question("q1", QUESTIONS[0], ("cramp",), True)]
    with pytest.raises(EvalError, match="BEIR folders only"):
        evaluate_questions(fake_qa, questions, ["default", "naive"])


def test_ask_never_reads_the_document_level(fake_qa: CrampQA,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Answers are the same verbatim passages with or without document vectors."""
    before = [fake_qa.ask(q, k=5).to_dict() for q in QUESTIONS]

    def refuse(data: object) -> None:
        raise AssertionError("ask read the document level")

    monkeypatch.setattr(DocumentLevel, "load", refuse)
    strip_document_level(fake_qa.index_dir)
    stripped = CrampQA.open_version(current_version(fake_qa.index_dir),  # type: ignore[arg-type]
                                    query_encoder=FakeEmbedder())
    after = [stripped.ask(q, k=5).to_dict() for q in QUESTIONS]
    assert after == before
    for answer in after:
        for p in answer["passages"]:
            assert p["text"] == stripped.document_text(p["doc_id"])[p["start"]:p["end"]]


# ---- the upgrade step -------------------------------------------------------------------


def test_an_index_without_document_vectors_opens_answers_and_says_how_to_add_them(
    beir_docs: Path, tmp_path: Path, fake_settings: object
) -> None:
    index = tmp_path / "idx"
    open_fake(beir_docs, index, fake_settings)
    strip_document_level(index)
    qa = open_fake(beir_docs, index, fake_settings)  # no rebuild: the index is fresh
    summary = CrampQA.build(beir_docs, index, settings=fake_settings,  # type: ignore[arg-type]
                            embedder=FakeEmbedder())
    assert summary.up_to_date and not summary.document_level  # `index` then says how
    assert qa.document_level is None and "document_level" not in json.loads(
        (qa.data.folder / MANIFEST).read_text(encoding="utf-8"))
    assert qa.ask("why do I get cramps at night", k=2).passages
    assert qa.rank_documents("why do I get cramps at night", 3, scorer=False)
    with pytest.raises(IndexError_, match="--document-vectors"):
        qa.rank_documents("night cramps", 3, naive=True)
    with pytest.raises(EvalError, match=r"crampqa index --document-vectors --index"):
        evaluate_beir(qa, prepare_beir(beir_docs, "dev"), ["default", "naive"])


def test_the_upgrade_adds_only_document_vectors_atomically(
    beir_docs: Path, tmp_path: Path, fake_settings: object
) -> None:
    index = tmp_path / "idx"
    open_fake(beir_docs, index, fake_settings)
    old = strip_document_level(index)
    old_files = json.loads((old / MANIFEST).read_text(encoding="utf-8"))["files"]

    # killed half-way: the index is as it was, nothing half-written is left
    with pytest.raises(RuntimeError):
        add_document_level(index, embedder=RecordingEmbedder(fail_after=3))
    assert current_version(index) == old
    assert not list(index.glob(".tmp-v-*"))

    embedder = RecordingEmbedder()
    summary = add_document_level(index, embedder=embedder)
    assert summary.added and summary.folder != old and current_version(index) == summary.folder
    data = load_version(summary.folder, verify_full=True)
    docs = data.documents
    # titles embedded, nothing else: document vectors come from the passage vectors
    assert sorted(embedder.seen) == sorted([d.title for d in docs if has_title(d)])
    assert data.manifest.document_level["added"] == "upgrade"
    for rel, info in old_files.items():  # every earlier file carried over unchanged
        assert data.manifest.files[rel] == info
    assert os.path.samefile(old / "embeddings.npy", summary.folder / "embeddings.npy") \
        or (old / "embeddings.npy").read_bytes() == (summary.folder / "embeddings.npy").read_bytes()
    assert data.manifest.settings == load_version(old).manifest.settings
    qa = CrampQA.open(beir_docs, index, settings=fake_settings,  # type: ignore[arg-type]
                      embedder=FakeEmbedder())
    assert qa.data.folder == summary.folder  # still fresh: no rebuild
    assert qa.rank_documents("bananas potassium electrolyte nerves", 1, naive=True)[0][0] == "d5"
    # a second run has nothing to add
    again = add_document_level(index, embedder=RecordingEmbedder())
    assert not again.added and again.folder == summary.folder


def test_cli_document_vectors(beir_docs: Path, tmp_path: Path, fake_settings: object) -> None:
    index = tmp_path / "idx"
    open_fake(beir_docs, index, fake_settings)
    strip_document_level(index)
    code, _, err = run_main("index", "--document-vectors", "--index", index)
    assert code == 0, err
    assert "Added document vectors for 21 documents" in err
    data = load_version(current_version(index))  # type: ignore[arg-type]
    assert data.manifest.model.name == FAKE_MODEL and data.manifest.document_level
    code, _, err = run_main("index", "--document-vectors", "--index", index)
    assert code == 0 and "already has document vectors" in err
    from crampqa.cli import info_summary

    lines = info_summary(open_fake(beir_docs, index, fake_settings))
    assert any(line.startswith("doc vectors yes (written by upgrade") for line in lines)
