"""A full disk during a build: exit 4 with one line, the temporary version removed, the
previous complete version untouched, and asking answers from it, saying so."""

from __future__ import annotations

import errno
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crampqa import CrampQA
from crampqa.dense import DenseIndex
from crampqa.errors import DiskFullError, is_disk_full
from crampqa.lexical import LexicalIndex
from crampqa.manifest import Manifest
from crampqa.store import CURRENT_FILE, current_version, load_version
from tests.conftest import FakeEmbedder
from tests.support import QUESTION, assert_verbatim, cli, texts_of, version

NEW_DOC = "# Quokka cramps\n\nQuokka cramps are eased by zebra tonic, says nobody.\n"


def full(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def message(index: Path) -> str:
    return f"No space left in {index}: free some space and try again; the index was not changed."


def faiss_full(*args: object, **kwargs: object) -> None:
    # what faiss.write_index raises when fwrite fails
    raise RuntimeError("Error in faiss::FileIOWriter::operator() at faiss/impl/io.cpp:103: "
                       "Error: 'ret == nitems' failed: write error in x.faiss: 0 != 1 "
                       "(No space left on device)")


def copytree_full(src: object, dst: object, *args: object, **kwargs: object) -> None:
    # what shutil.copytree raises when its copies fail: a list of (src, dst, why)
    raise shutil.Error([(f"{src}/model.onnx", f"{dst}/model.onnx",
                         "[Errno 28] No space left on device")])


def assert_untouched(index: Path, before: Path | None) -> None:
    """CURRENT still names ``before``, which is complete; no temporary folder is left."""
    assert current_version(index) == before
    assert not list(index.glob(".tmp-*")) and not list(index.glob(f".{CURRENT_FILE}.*"))
    assert sorted(p.name for p in index.glob("v-*")) == ([before.name] if before else [])
    if before is not None:
        load_version(before, verify_full=True)


# ---- every write stage of a build -------------------------------------------------------

STAGES: dict[str, tuple[str, Any]] = {
    "arrays": ("numpy.save", full),
    "bm25": ("LexicalIndex.save", full),
    "faiss": ("DenseIndex.save", faiss_full),
    "manifest": ("Manifest.dump", full),
    "current-pointer": ("pathlib.Path.write_text", None),  # only the pointer's write
}


def _patch(monkeypatch: pytest.MonkeyPatch, stage: str) -> None:
    target, fake = STAGES[stage]
    if stage == "current-pointer":
        real = Path.write_text

        def write_text(self: Path, *args: Any, **kwargs: Any) -> int:
            if self.name.startswith(f".{CURRENT_FILE}."):
                full()
            return real(self, *args, **kwargs)

        monkeypatch.setattr(Path, "write_text", write_text)
    elif target == "numpy.save":
        monkeypatch.setattr(np, "save", fake)
    else:
        owner = {"LexicalIndex": LexicalIndex, "DenseIndex": DenseIndex,
                 "Manifest": Manifest}[target.split(".")[0]]
        monkeypatch.setattr(owner, target.split(".")[1], fake)


@pytest.mark.usefixtures("fake_default_model")
@pytest.mark.parametrize("stage", list(STAGES))
def test_a_full_disk_during_an_incremental_build(stage: str, index: Path, corpus_copy: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    before = version(index)
    texts = texts_of(corpus_copy)
    (corpus_copy / "quokka.md").write_text(NEW_DOC, encoding="utf-8")
    with pytest.MonkeyPatch.context() as disk:
        _patch(disk, stage)
        run = cli("index", "--corpus", corpus_copy, "--index", index)
        assert run.error(4) == message(index)
        assert_untouched(index, before)
        # asking answers from the previous complete version, and says why
        ask = cli("ask", QUESTION, "--json", "--corpus", corpus_copy, "--index", index)
        answer = ask.answer()
        assert ask.err_lines == [f"No space left in {index} to update the index (the corpus "
                                 "changed): free some space; answering from the previous "
                                 "complete version."]
        assert_verbatim(answer, texts)
        assert "quokka" not in {p["doc_id"] for p in answer["passages"]}
    # space again: the next ask brings the index up to date
    ask = cli("ask", "quokka zebra tonic", "--json", "--corpus", corpus_copy, "--index", index)
    assert ask.answer()["passages"][0]["doc_id"] == "quokka"


@pytest.mark.usefixtures("fake_default_model")
def test_a_full_disk_during_a_first_build(corpus: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    index = tmp_path / "index"
    monkeypatch.setattr(np, "save", full)
    assert cli("index", "--corpus", corpus, "--index", index).error(4) == message(index)
    assert_untouched(index, None)
    # nothing to fall back on: asking says the same
    run = cli("ask", QUESTION, "--json", "--corpus", corpus, "--index", index)
    assert run.error(4, "disk_full") == message(index)


@pytest.mark.usefixtures("fake_default_model")
def test_a_full_disk_when_making_the_version_folder(index: Path, corpus: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    before = version(index)
    monkeypatch.setattr(Path, "mkdir", full)
    run = cli("index", "--rebuild", "--corpus", corpus, "--index", index)
    assert run.error(4) == message(index)
    monkeypatch.undo()
    assert_untouched(index, before)


# ---- the query encoder: copied from the previous version, or exported ------------------


class ExportingEmbedder(FakeEmbedder):
    """The fake embedder with a query-encoder export (a stand-in file)."""

    fail: BaseException | None = None

    def export(self, folder: Path) -> None:
        if self.fail is not None:
            raise self.fail
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(b"stand-in")


def test_a_full_disk_copying_the_encoder(corpus_copy: Path, tmp_path: Path,
                                         fake_settings: Any,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    index = tmp_path / "index"
    embedder = ExportingEmbedder()
    CrampQA.build(corpus_copy, index, settings=fake_settings, embedder=embedder)
    before = version(index)
    assert (before / "encoder" / "model.onnx").is_file()
    (corpus_copy / "quokka.md").write_text(NEW_DOC, encoding="utf-8")
    monkeypatch.setattr("crampqa.indexing.shutil.copytree", copytree_full)
    with pytest.raises(DiskFullError) as info:
        CrampQA.build(corpus_copy, index, settings=fake_settings, embedder=embedder)
    assert info.value.message == message(index) and info.value.exit_code == 4
    assert_untouched(index, before)
    qa = CrampQA.open(corpus_copy, index, settings=fake_settings, embedder=embedder)
    assert qa.data.folder == before and qa.notice is not None
    assert qa.notice.startswith(f"No space left in {index} to update the index")


def test_a_full_disk_exporting_the_encoder(corpus: Path, tmp_path: Path,
                                           fake_settings: Any) -> None:
    """Not 'check the torch/onnx installation': the export's own error is a full disk."""
    index = tmp_path / "index"
    embedder = ExportingEmbedder()
    embedder.fail = OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(DiskFullError) as info:
        CrampQA.build(corpus, index, settings=fake_settings, embedder=embedder)
    assert info.value.message == message(index)
    assert_untouched(index, None)


def test_the_onnx_export_passes_a_full_disk_on(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import crampqa.onnx_encoder as onnx_encoder
    from crampqa.embedding import model_path

    def export_once(torch: Any, wrapper: Any, example: Sequence[Any], path: Path,
                    dynamo: bool) -> None:
        path.write_bytes(b"half")
        full()

    monkeypatch.setattr(onnx_encoder, "_export_once", export_once)
    out = tmp_path / "encoder"
    with pytest.raises(OSError) as info:
        onnx_encoder.export_onnx(model_path(), out)
    assert info.value.errno == errno.ENOSPC
    assert not list(out.iterdir())  # the half-written model is removed


# ---- recognising a full disk ------------------------------------------------------------


@pytest.mark.parametrize(("exc", "expected"), [
    (OSError(errno.ENOSPC, "No space left on device"), True),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
    (shutil.Error([("a", "b", "[Errno 28] No space left on device")]), True),
    (RuntimeError("write error in x.faiss: 0 != 1 (No space left on device)"), True),
    (OSError(errno.EACCES, "Permission denied"), False),
    (RuntimeError("something else"), False),
])
def test_is_disk_full(exc: BaseException, expected: bool) -> None:
    assert is_disk_full(exc) is expected
    try:
        try:
            raise exc
        except BaseException as inner:
            raise ValueError("wrapped") from inner
    except ValueError as outer:
        assert is_disk_full(outer) is expected
