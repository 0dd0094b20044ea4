"""The index folder: manifest, no pickle, atomic versions, staleness, damage detection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crampqa import CrampQA
from crampqa.errors import IndexError_, IndexLockedError
from crampqa.manifest import FORMAT_VERSION
from crampqa.store import MANIFEST, build_lock, current_version, load_version
from tests.conftest import FakeEmbedder


def _build(corpus: Path, index: Path, settings) -> CrampQA:
    return CrampQA.open(corpus, index, settings=settings, embedder=FakeEmbedder())


def test_manifest_records_model_settings_and_corpus_hashes(fake_qa: CrampQA) -> None:
    manifest = fake_qa.manifest
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["model"]["name"] == "fake-hash-embedder"
    assert manifest["settings"]["chunk"]["max_chars"] == 600
    assert set(manifest["corpus"]["documents"]) == {
        "000_153f9343c5352d90", "001_3d8ed29e24e925cb", "002_2f11bc5b4f226583",
        "003_12316ab2354a0fef", "004_e0e782d50d9d779d"}
    assert all(len(h) == 64 for h in manifest["corpus"]["documents"].values())
    assert "passages.npy" in manifest["files"] and "dense.faiss" in manifest["files"]


def _npy_dtype(path: Path) -> np.dtype[Any]:
    """The dtype an .npy file declares in its header (nothing else is read)."""
    with path.open("rb") as handle:
        major, _ = np.lib.format.read_magic(handle)
        read = (np.lib.format.read_array_header_1_0 if major == 1
                else np.lib.format.read_array_header_2_0)
        _, _, dtype = read(handle)
    return dtype


def test_arrays_load_without_pickle(fake_qa: CrampQA) -> None:
    """Every array is stored as plain numbers, and no file of the version is a pickle."""
    folder = fake_qa.data.folder
    expected = {"passages.npy": np.int64, "sentences.npy": np.int64,
                "embeddings.npy": np.float32, "sentence_embeddings.npy": np.float32}
    arrays = sorted(folder.rglob("*.npy"))
    assert {p.name for p in arrays} >= set(expected)
    for path in arrays:
        dtype = _npy_dtype(path)
        assert not dtype.hasobject and dtype.kind in "biuf", (path.name, dtype)
        if path.name in expected:
            assert dtype == expected[path.name], (path.name, dtype)
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                head = handle.read(2)
            # pickle protocols 2 to 5 start with PROTO n; 0 and 1 are not written by numpy
            assert not (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5), path
    assert not [p for p in folder.rglob("*") if p.suffix in {".pkl", ".pickle"}]


def test_unchanged_corpus_is_not_rebuilt(corpus_copy, tmp_path, fake_settings) -> None:
    first = _build(corpus_copy, tmp_path / "i", fake_settings)
    second = _build(corpus_copy, tmp_path / "i", fake_settings)
    assert first.build_summary is not None
    assert second.build_summary is None
    assert second.data.folder == first.data.folder


def test_changed_document_triggers_incremental_rebuild(corpus_copy, tmp_path,
                                                       fake_settings) -> None:
    _build(corpus_copy, tmp_path / "i", fake_settings)
    doc = corpus_copy / "001_3d8ed29e24e925cb.txt"
    doc.write_text(doc.read_text(encoding="utf-8") + "\nQuinine was once used for cramps.\n",
                   encoding="utf-8")
    (corpus_copy / "004_e0e782d50d9d779d.txt").unlink()
    (corpus_copy / "new.md").write_text("# Potassium\nBananas contain potassium.\n", "utf-8")
    qa = _build(corpus_copy, tmp_path / "i", fake_settings)
    summary = qa.build_summary
    assert summary is not None
    assert (summary.added, summary.changed, summary.unchanged, summary.removed) == (1, 1, 3, 1)
    texts = [qa.data.passages.text(r) for r in range(len(qa.data.passages))]
    assert any("Quinine was once used" in t for t in texts)
    # reused rows still point at the right text and vectors
    fresh = CrampQA.open(corpus_copy, tmp_path / "fresh", settings=fake_settings,
                         embedder=FakeEmbedder())
    assert sorted(texts) == sorted(
        fresh.data.passages.text(r) for r in range(len(fresh.data.passages)))
    by_text = {t: qa.data.embeddings[i] for i, t in enumerate(texts)}
    for r in range(len(fresh.data.passages)):
        np.testing.assert_allclose(by_text[fresh.data.passages.text(r)], fresh.data.embeddings[r])


def test_chunker_change_forces_full_rebuild(corpus_copy, tmp_path, fake_settings) -> None:
    from dataclasses import replace

    from crampqa.config import ChunkSettings

    _build(corpus_copy, tmp_path / "i", fake_settings)
    changed = replace(fake_settings, chunk=ChunkSettings(max_chars=300))
    qa = _build(corpus_copy, tmp_path / "i", changed)
    assert qa.build_summary is not None
    assert qa.build_summary.full_rebuild_reason == "the chunker settings changed"
    assert qa.build_summary.added == 5


def test_failed_build_leaves_previous_index(corpus_copy, tmp_path, fake_settings,
                                            monkeypatch) -> None:
    qa = _build(corpus_copy, tmp_path / "i", fake_settings)
    before = current_version(tmp_path / "i")
    (corpus_copy / "extra.txt").write_text("Magnesium helps muscles relax.", encoding="utf-8")

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("crampqa.indexing.write_documents", boom)
    with pytest.raises(RuntimeError):
        CrampQA.build(corpus_copy, tmp_path / "i", settings=fake_settings,
                      embedder=FakeEmbedder())
    assert current_version(tmp_path / "i") == before
    assert not list((tmp_path / "i").glob(".tmp-*"))
    assert load_version(before).passages.array.shape == qa.data.passages.array.shape


@pytest.mark.parametrize("name", ["passages.npy", "documents.jsonl", "dense.faiss",
                                  "bm25/vocab.index.json"])
def test_truncated_or_corrupted_files_are_detected(fake_qa: CrampQA, name: str) -> None:
    path = fake_qa.data.folder / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexError_, match="crampqa index --rebuild"):
        load_version(fake_qa.data.folder)
    path.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])  # same size, different bytes
    with pytest.raises(IndexError_, match="checksum"):
        load_version(fake_qa.data.folder, verify_full=True)


def test_newer_format_and_missing_manifest(fake_qa: CrampQA) -> None:
    path = fake_qa.data.folder / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["format_version"] = 99
    path.write_text(json.dumps(manifest))
    with pytest.raises(IndexError_, match="newer crampqa"):
        load_version(fake_qa.data.folder)
    path.unlink()
    with pytest.raises(IndexError_, match="no manifest"):
        load_version(fake_qa.data.folder)


def test_second_builder_is_refused_while_locked(tmp_path: Path) -> None:
    with build_lock(tmp_path), pytest.raises(IndexLockedError, match="Another crampqa"), \
            build_lock(tmp_path):
        pass


def test_index_run_on_an_unchanged_corpus_writes_nothing(
    corpus_copy: Path, tmp_path: Path, fake_settings: Any
) -> None:
    from dataclasses import replace

    root = tmp_path / "i"
    first = CrampQA.build(corpus_copy, root, settings=fake_settings, embedder=FakeEmbedder())
    versions = sorted(p.name for p in root.iterdir())
    again = CrampQA.build(corpus_copy, root, settings=fake_settings, embedder=FakeEmbedder())
    assert again.up_to_date and again.folder == first.folder
    assert (again.documents, again.unchanged, again.passages) == (5, 5, first.passages)
    assert sorted(p.name for p in root.iterdir()) == versions
    # anything a build would record differently writes a new version
    (corpus_copy / "004_e0e782d50d9d779d.txt").touch()  # same text, new file time
    touched = CrampQA.build(corpus_copy, root, settings=fake_settings, embedder=FakeEmbedder())
    assert not touched.up_to_date and touched.folder != first.folder
    stricter = replace(fake_settings, retrieval=replace(fake_settings.retrieval,
                                                        abstain_threshold=0.5))
    retuned = CrampQA.build(corpus_copy, root, settings=stricter, embedder=FakeEmbedder())
    assert not retuned.up_to_date and retuned.folder != touched.folder
    assert (retuned.added, retuned.changed, retuned.unchanged) == (0, 0, 5)
    (corpus_copy / "notes.png").write_bytes(b"\x89PNG")  # a new skipped file is recorded
    skipped = CrampQA.build(corpus_copy, root, settings=stricter, embedder=FakeEmbedder())
    assert not skipped.up_to_date and skipped.skipped
