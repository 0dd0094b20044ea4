"""Incremental builds: only new or changed documents are embedded; a model or chunker
change rebuilds everything; the query encoder export is reused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crampqa import CrampQA
from crampqa.config import MODEL_NAME, ChunkSettings, IndexSettings
from crampqa.embedding import ModelIdentity
from crampqa.store import current_version
from tests.conftest import FakeDefaultEmbedder, FakeEmbedder
from tests.support import ask_json, cli_lines, mixed_tree, run_index, summary_line, write

pytestmark = pytest.mark.usefixtures("fake_default_model")


# ---- incremental indexing --------------------------------------------------------------


def test_incremental_summary_and_only_new_or_changed_documents_are_embedded(
        tmp_path: Path) -> None:
    corpus, idx = mixed_tree(tmp_path / "corpus"), tmp_path / "index"
    err = run_index(corpus, idx)
    assert "(5 added, 0 changed, 0 unchanged, 0 removed; 0 files skipped)" in summary_line(err)

    write(corpus / "calf.txt", "Calf cramps\n\nZorblax stretches are the new advice for "
          "calf cramps.\n")  # changed
    (corpus / "minerals" / "deep" / "potassium.txt").unlink()  # removed
    write(corpus / "new" / "sodium.md", "# Sodium\n\nSalt loss in sweat: quorvex.\n")  # added
    FakeDefaultEmbedder.seen = []
    err = run_index(corpus, idx)
    assert "(1 added, 1 changed, 3 unchanged, 1 removed; 0 files skipped)" in \
        summary_line(err)
    assert "Indexed 5 documents" in summary_line(err)
    assert not any(line.startswith("Full rebuild") for line in err)
    embedded = " ".join(FakeDefaultEmbedder.seen)
    assert "Zorblax" in embedded and "quorvex" in embedded
    for untouched in ("Magnesium helps", "Quinine", "Writer's notes", "Bananas"):
        assert untouched not in embedded

    answer = ask_json(corpus, idx, "zorblax stretches", k=1)
    assert answer["passages"][0]["doc_id"] == "calf"
    code, out, _ = cli_lines("sources", "--json", "--index", idx, "--corpus", corpus)
    assert code == 0
    assert "minerals/deep/potassium" not in {d["doc_id"] for d in json.loads(out)}

    # nothing changed: everything is reused, nothing embedded
    FakeDefaultEmbedder.seen = []
    err = run_index(corpus, idx)
    assert "(0 added, 0 changed, 5 unchanged, 0 removed" in summary_line(err)
    assert FakeDefaultEmbedder.seen == []


def test_chunker_or_model_change_forces_a_full_rebuild_with_one_line(
        tmp_path: Path, fake_settings: IndexSettings) -> None:
    corpus, idx = mixed_tree(tmp_path / "corpus"), tmp_path / "index"
    CrampQA.build(corpus, idx, settings=IndexSettings(chunk=ChunkSettings(max_chars=200)))
    FakeDefaultEmbedder.seen = []
    err = run_index(corpus, idx)  # the CLI's default chunker
    assert [line for line in err if line.startswith("Full rebuild")] == [
        "Full rebuild: the chunker settings changed."]
    assert "(5 added, 0 changed, 0 unchanged, 0 removed" in summary_line(err)
    assert "Magnesium helps" in " ".join(FakeDefaultEmbedder.seen)

    summary = CrampQA.build(corpus, idx, settings=fake_settings, embedder=FakeEmbedder())
    assert summary.full_rebuild_reason == \
        f"the model changed ({MODEL_NAME} -> {fake_settings.model})"
    assert summary.added == 5 and summary.unchanged == 0




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
    # linked, not written again: the real export is about 90 MB
    assert (second / "encoder" / "model.onnx").stat().st_ino == \
        (first / "encoder" / "model.onnx").stat().st_ino  # type: ignore[operator]
    CrampQA.build(corpus, idx, embedder=ExportingEmbedder(), rebuild=True)
    assert ExportingEmbedder.exports == 1  # a full rebuild of the same weights copies it too


def test_other_weights_are_exported_afresh(tmp_path: Path) -> None:
    corpus, idx = mixed_tree(tmp_path / "corpus"), tmp_path / "index"
    ExportingEmbedder.exports = 0
    CrampQA.build(corpus, idx, embedder=ExportingEmbedder())

    class OtherWeights(ExportingEmbedder):
        def identity(self, known: ModelIdentity | None = None) -> ModelIdentity:
            return ModelIdentity(self.name, "0" * 64)

    CrampQA.build(corpus, idx, embedder=OtherWeights(), rebuild=True)
    assert ExportingEmbedder.exports == 2
