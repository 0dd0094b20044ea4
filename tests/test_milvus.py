"""The Milvus search backend: optional extra, manifest record, updates by source ID, and
the same rankings as the embedded backend (marked ``milvus``: against a real server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from crampqa import CrampQA
from crampqa.config import PROJECT_ROOT, Backend, RetrievalSettings, SearchSettings
from crampqa.errors import BackendError, IndexError_, InputError
from crampqa.evaluation.datasets import load_questions
from crampqa.evaluation.runner import evaluate_questions
from crampqa.manifest import Manifest, seal
from crampqa.retrieval import with_overrides
from crampqa.store import current_version, record_search
from tests.conftest import CORPUS, FakeDefaultEmbedder, run_main

#: The server .ci/run starts (loopback only); unset where none could be started.
MILVUS_URI = os.environ.get("CRAMPQA_MILVUS_URI", "")


# ---- without a server ------------------------------------------------------------------


def test_default_path_never_imports_pymilvus(base: tuple[Path, Path]) -> None:
    """Opening and asking with the embedded backend (the default) loads no Milvus code."""
    corpus, index = base
    code = (
        "import sys\n"
        "from tests.conftest import FakeDefaultEmbedder\n"
        "from crampqa import CrampQA\n"
        "from crampqa.cli import app\n"
        f"qa = CrampQA.open({str(corpus)!r}, {str(index)!r}, auto_build=False, "
        "embedder=FakeDefaultEmbedder())\n"
        "assert qa.ask('why do my calves cramp at night', scorer=False).passages\n"
        "loaded = sorted(m for m in sys.modules if 'milvus' in m)\n"
        "print(loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_milvus_without_the_extra_says_how_to_install(
    base: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, fake_default_model: None
) -> None:
    monkeypatch.setitem(sys.modules, "pymilvus", None)  # import pymilvus -> ImportError
    corpus, index = base
    code, out, err = run_main("ask", "--corpus", corpus, "--index", index, "--backend",
                              "milvus", "--uri", "http://127.0.0.1:9", "cramp")
    assert code == BackendError.exit_code
    assert out == ""
    assert err.strip().count("\n") == 0
    assert "pip install 'crampqa[milvus]'" in err


#: Nothing listens on port 1: a real, unreachable server.
UNREACHABLE = "http://127.0.0.1:1"


@pytest.mark.milvus  # needs pymilvus (crampqa[milvus]); in CI a skip is a failure
def test_an_unreachable_server_is_an_error_never_a_fallback(
    index: Path, corpus: Path, fake_default_model: None
) -> None:
    """With pymilvus installed, a Milvus backend whose server does not answer stops with
    one line and exit code 8: it never answers from the embedded backend instead."""
    pytest.importorskip("pymilvus", reason="pymilvus is not installed: "
                        "pip install 'crampqa[milvus]'")
    asked = ("--corpus", corpus, "--index", index, "why do my calves cramp at night")
    code, out, err = run_main("ask", "--backend", "milvus", "--uri", UNREACHABLE, *asked)
    assert code == BackendError.exit_code, out + err
    assert out == ""
    assert err.startswith(f"crampqa: error: Cannot reach Milvus at {UNREACHABLE}")
    assert err.strip().count("\n") == 0
    # an index that records the backend: every later ask goes to the server, or fails
    folder = current_version(index)
    assert folder is not None
    record_search(folder, SearchSettings(Backend.MILVUS, UNREACHABLE, "c1").to_dict())
    code, out, err = run_main("ask", "--json", *asked)
    assert code == BackendError.exit_code, out + err
    assert json.loads(out)["error"] == BackendError.code
    assert f"Cannot reach Milvus at {UNREACHABLE}" in err
    with pytest.raises(BackendError, match="Cannot reach Milvus"):
        CrampQA.open(corpus, index, auto_build=False, embedder=FakeDefaultEmbedder())


def test_search_settings_are_checked() -> None:
    with pytest.raises(InputError, match="needs --uri"):
        SearchSettings(Backend.MILVUS)
    with pytest.raises(InputError, match="only used with --backend milvus"):
        SearchSettings(Backend.EMBEDDED, "http://127.0.0.1:19530")
    with pytest.raises(InputError, match="collection name"):
        SearchSettings(Backend.MILVUS, "http://x", "bad-name")
    with pytest.raises(InputError, match="Unknown --backend"):
        SearchSettings("opensearch")  # type: ignore[arg-type]
    milvus = SearchSettings(Backend.MILVUS, "http://127.0.0.1:19530", "c1")
    assert SearchSettings.from_dict(milvus.to_dict()) == milvus
    assert SearchSettings.from_dict({}) == SearchSettings()


def test_the_backend_is_recorded_in_the_manifest(index: Path) -> None:
    folder = current_version(index)
    assert folder is not None
    assert Manifest.load(folder).search_settings == SearchSettings()
    entry = SearchSettings(Backend.MILVUS, "http://127.0.0.1:19530", "c1").to_dict()
    record_search(folder, entry)
    manifest = Manifest.load(folder)
    assert manifest.search == entry
    assert manifest.search_settings.backend is Backend.MILVUS
    data = json.loads((folder / "manifest.json").read_text())
    data["search"]["backend"] = "nowhere"
    (folder / "manifest.json").write_bytes(seal(data))  # sealed: the entry itself is checked
    with pytest.raises(IndexError_, match="damaged"):
        Manifest.load(folder)


# ---- against a running server (.ci/run starts milvus-lite) ------------------------------


@pytest.fixture(scope="module")
def milvus_uri() -> str:
    """The server's URI, or a skip saying why there is none."""
    if not MILVUS_URI:
        pytest.skip("no Milvus server: CRAMPQA_MILVUS_URI is not set (.ci/run starts a "
                    "milvus-lite server and sets it)")
    try:
        from pymilvus import MilvusClient
    except ImportError:
        pytest.skip("pymilvus is not installed: pip install 'crampqa[milvus]'")
    try:
        MilvusClient(uri=MILVUS_URI, timeout=5).close()
    except Exception as exc:
        pytest.skip(f"no Milvus server answers at {MILVUS_URI} ({exc})")
    return MILVUS_URI


@pytest.fixture
def collection(milvus_uri: str) -> Iterator[SearchSettings]:
    """A fresh collection name, dropped afterwards."""
    from pymilvus import MilvusClient

    settings = SearchSettings(Backend.MILVUS, milvus_uri, f"test_{uuid.uuid4().hex[:12]}")
    yield settings
    client = MilvusClient(uri=milvus_uri)
    if client.has_collection(settings.collection):
        client.drop_collection(settings.collection)
    client.close()


def _count(settings: SearchSettings) -> int:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=settings.uri)
    client.load_collection(settings.collection)
    count = client.query(settings.collection, filter="", output_fields=["count(*)"])
    client.close()
    return int(count[0]["count(*)"])


@pytest.mark.milvus
def test_index_moves_to_milvus_and_updates_by_source_id(
    corpus_copy: Path, tmp_path: Path, collection: SearchSettings, fake_default_model: None
) -> None:
    index = tmp_path / "index"
    CrampQA.build(corpus_copy, index, embedder=FakeDefaultEmbedder())
    # the migration: an existing index, nothing embedded again
    FakeDefaultEmbedder.seen = []
    code, _, err = run_main("index", "--corpus", corpus_copy, "--index", index, "--backend",
                            "milvus", "--uri", collection.uri, "--collection",
                            collection.collection)
    assert code == 0, err
    assert FakeDefaultEmbedder.seen == []
    folder = current_version(index)
    assert folder is not None
    passages = Manifest.load(folder).passages
    assert f"{passages} upserted, 0 deleted, 0 unchanged" in err
    assert Manifest.load(folder).search_settings == collection
    assert _count(collection) == passages
    # one document changes: only its passages are upserted or deleted (recorded backend)
    doc = sorted(p for p in corpus_copy.iterdir() if p.is_file())[0]
    doc.write_text(doc.read_text(encoding="utf-8") + "\n\nNew closing line about cramps.\n",
                   encoding="utf-8")
    summary = CrampQA.build(corpus_copy, index, embedder=FakeDefaultEmbedder())
    assert summary.search_note is not None
    upserted, _deleted, unchanged = (int(summary.search_note.split(": ")[1].split(", ")[i]
                                        .split()[0]) for i in range(3))
    assert 0 < upserted < passages and unchanged > 0
    assert _count(collection) == summary.passages == upserted + unchanged
    # answers come from Milvus and are verbatim slices of the stored documents
    qa = CrampQA.open(corpus_copy, index, auto_build=False, embedder=FakeDefaultEmbedder())
    assert qa.retriever.source.name == "milvus"
    answer = qa.ask("why do my calves cramp at night", scorer=False)
    assert answer.passages
    for p in answer.passages:
        assert p.text == qa.document_text(p.doc_id)[p.start:p.end]


@pytest.mark.milvus
def test_a_stale_collection_is_refused(base: tuple[Path, Path], collection: SearchSettings
                                       ) -> None:
    from pymilvus import MilvusClient

    from crampqa.milvus import sync

    corpus, index = base
    qa = CrampQA.open(corpus, index, auto_build=False, embedder=FakeDefaultEmbedder())
    sync(qa.data, collection)
    client = MilvusClient(uri=collection.uri)
    client.delete(collection.collection, ids=[qa.data.passages.source_id(0)])
    client.close()
    with pytest.raises(IndexError_, match="bring it up to date"):
        CrampQA.open(corpus, index, auto_build=False, embedder=FakeDefaultEmbedder(),
                     search=collection)
    assert sync(qa.data, collection).upserted == 1


def _same_order(a: list[int], b: list[int], scores: dict[int, float]) -> bool:
    """Equal rankings, ties aside: where they differ, the passages' scores are equal."""
    if len(a) != len(b):
        return False
    return all(x == y or abs(scores.get(x, 0) - scores.get(y, 1)) < 1e-5
               for x, y in zip(a, b, strict=True))


@pytest.mark.milvus
@pytest.mark.slow
def test_same_answers_as_the_embedded_backend(real_index: Path, collection: SearchSettings
                                              ) -> None:
    """On our articles: the same passages in the same order for dense-only and BM25-only
    ranking, and the default configuration's nDCG@10 within 0.01."""
    from crampqa.milvus import sync

    embedded = CrampQA.open(CORPUS, real_index, auto_build=False)
    sync(embedded.data, collection)
    milvus = CrampQA.open(CORPUS, real_index, auto_build=False, search=collection,
                          query_encoder=embedded.retriever.encoder)
    assert milvus.retriever.source.name == "milvus"
    questions = load_questions(PROJECT_ROOT / "eval" / "questions.jsonl")
    base = RetrievalSettings()
    for fusion in ("dense", "lexical"):
        settings = with_overrides(base, fusion=fusion, rescore=False, scorer=False)
        for q in questions:
            one = embedded.retriever.rank(q.question, 10, settings, diversify=False)
            two = milvus.retriever.rank(q.question, 10, settings, diversify=False)
            scores = {c.row: c.score for c in one.candidates}
            assert _same_order([c.row for c in one.candidates],
                               [c.row for c in two.candidates], scores), (fusion, q.id)
            assert np.allclose([c.score for c in one.candidates],
                               [c.score for c in two.candidates], atol=1e-4)
    names = ["default"]
    first = evaluate_questions(embedded, questions, names, 10).configs[0].metrics
    second = evaluate_questions(milvus, questions, names, 10).configs[0].metrics
    assert abs(first["nDCG@10"] - second["nDCG@10"]) <= 0.01
