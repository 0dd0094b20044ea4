"""Damaged, foreign and unwritable indexes: detected, refused in one line, repaired."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from crampqa import CrampQA
from crampqa.config import MODEL_NAME
from crampqa.errors import IndexError_
from crampqa.manifest import FORMAT_VERSION, seal
from crampqa.store import CURRENT_FILE, MANIFEST, load_version
from tests.conftest import FAKE_MODEL, FakeEmbedder
from tests.support import (
    QUESTION,
    REBUILD,
    Crampqa,
    assert_verbatim,
    cli,
    finish,
    texts_of,
    version,
)

pytestmark = pytest.mark.usefixtures("fake_default_model")


# ---- indexes ------------------------------------------------------------------------


def test_every_truncated_or_corrupted_index_file_is_detected(index: Path,
                                                             corpus: Path) -> None:
    folder = version(index)
    files = sorted(json.loads((folder / MANIFEST).read_text())["files"])
    assert "passages.npy" in files and "bm25/vocab.index.json" in files
    for rel in files:
        path = folder / rel
        good = path.read_bytes()
        damages = {
            "truncated": (good[: len(good) // 2], "is truncated or damaged (size"),
            "emptied": (b"", "is truncated or damaged (size 0,"),
            "corrupted": (bytes([good[len(good) // 2] ^ 0xFF]).join(
                [good[: len(good) // 2], good[len(good) // 2 + 1 :]]),
                "is corrupted (checksum mismatch)"),
        }
        for how, (data, expected) in damages.items():
            path.write_bytes(data)
            message = cli("ask", QUESTION, "--index", index, "--corpus", corpus).error(4)
            assert message.startswith(f"Index file {rel} {expected}"), (rel, how, message)
            assert message.endswith(f"; {REBUILD}."), (rel, how, message)
        path.unlink()
        assert cli("ask", QUESTION, "--index", index).error(4) == (
            f"Index file {rel} is missing in {folder}; {REBUILD}.")
        path.write_bytes(good)
    assert cli("ask", QUESTION, "--json", "--index", index, "--corpus", corpus).answer()


@pytest.mark.parametrize("command", [["ask", QUESTION, "--json"], ["sources", "--json"],
                                     ["info"]], ids=["ask", "sources", "info"])
def test_damaged_index_fails_the_same_way_for_every_command(command: list[str],
                                                            index: Path) -> None:
    (version(index) / "sentences.npy").write_bytes(b"\x93NUMPY")
    run = cli(*command, "--index", index)
    message = run.error(4, "index_error" if "--json" in command else None)
    assert message.startswith("Index file sentences.npy is truncated or damaged")


def test_damaged_manifest_and_current_pointer(index: Path) -> None:
    folder = version(index)
    manifest = folder / MANIFEST
    good = manifest.read_text()
    manifest.write_text(good[: len(good) // 2])
    assert cli("ask", QUESTION, "--index", index).error(4) == (
        f"The index manifest {manifest} is damaged; {REBUILD}.")
    data = json.loads(good)
    del data["model"]
    manifest.write_bytes(seal(data))  # sealed again: the shape itself is checked
    assert cli("ask", QUESTION, "--index", index).error(4) == (
        f"The index manifest {manifest} is damaged (model missing or malformed); {REBUILD}.")
    manifest.unlink()  # missing manifest
    assert cli("ask", QUESTION, "--json", "--index", index).error(4, "index_error") == (
        f"The index in {folder} has no manifest; {REBUILD}.")
    manifest.write_text(good)
    pointer = index / CURRENT_FILE
    pointer.write_text("")
    assert cli("ask", QUESTION, "--index", index).error(4) == (
        f"{pointer} is damaged; {REBUILD}.")
    pointer.write_text("v-gone\n")
    assert cli("ask", QUESTION, "--index", index).error(4) == (
        f"Index version v-gone named in {pointer} is missing; {REBUILD}.")


def test_index_command_repairs_a_damaged_index(index: Path, corpus: Path) -> None:
    (version(index) / "passages.npy").write_bytes(b"garbage")
    run = cli("index", "--corpus", corpus, "--index", index)
    assert run.code == 0, run.err
    assert run.err_lines[0].startswith("Full rebuild: the previous index is unusable (Index "
                                       "file passages.npy is truncated or damaged")
    assert run.err_lines[1].startswith("Indexed 5 documents into ")
    load_version(version(index), verify_full=True)
    assert cli("ask", QUESTION, "--json", "--index", index, "--corpus", corpus).answer()


@pytest.mark.parametrize("stored", [FORMAT_VERSION + 1, 99], ids=repr)
def test_newer_or_unknown_format_version_is_refused(stored: object, index: Path) -> None:
    folder = version(index)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["format_version"] = stored
    (folder / MANIFEST).write_text(json.dumps(manifest))
    message = cli("ask", QUESTION, "--json", "--index", index).error(4, "index_error")
    assert message == (f"The index in {folder} was written by a newer crampqa (format "
                       f"{stored}, this one reads {FORMAT_VERSION}); upgrade crampqa or "
                       f"{REBUILD}.")


def test_index_built_with_another_model(corpus: Path, tmp_path: Path,
                                        fake_settings: Any) -> None:
    index = tmp_path / "index"
    CrampQA.build(corpus, index, settings=fake_settings, embedder=FakeEmbedder())
    old = version(index)
    with pytest.raises(IndexError_) as info:  # asked not to build: a clear refusal
        CrampQA.open(corpus, index, auto_build=False)
    assert info.value.message == (f"The index in {index} needs building (the model changed "
                                  f"({FAKE_MODEL} -> {MODEL_NAME})); run `crampqa index`.")
    run = cli("ask", QUESTION, "--json", "--index", index, "--corpus", corpus)
    answer = run.answer()  # otherwise it is rebuilt with the current model, then answers
    assert run.err_lines[0] == (f"Full rebuild: the model changed ({FAKE_MODEL} -> "
                                f"{MODEL_NAME}).")
    assert version(index) != old
    assert load_version(version(index)).manifest.model.name == MODEL_NAME
    assert_verbatim(answer, texts_of(corpus))


def test_read_only_index_folder_answers_but_refuses_to_build(index: Path, corpus: Path,
                                                             sub: Crampqa) -> None:
    prefix: list[str] = []
    if os.geteuid() == 0:  # root writes anywhere: drop its capabilities for the subprocesses
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv")
        prefix = [setpriv, "--bounding-set=-all", "--inh-caps=-all", "--"]
    for path in [index, *index.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        answer = finish(sub.start("ask", QUESTION, "--json", "--index", index, "--corpus",
                                  corpus, prefix=prefix)).answer()
        assert_verbatim(answer, texts_of(corpus))
        run = finish(sub.start("index", "--rebuild", "--corpus", corpus, "--index", index,
                               prefix=prefix))
        assert run.error(4) == (f"Cannot write to the index folder {index}: Permission "
                                "denied; choose a writable folder with --index DIR.")
        load_version(version(index), verify_full=True)
    finally:
        for path in [index, *index.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_read_only_index_with_a_changed_corpus_answers_from_the_previous_version(
        index: Path, corpus_copy: Path, sub: Crampqa) -> None:
    """As with a full disk or a locked index: the previous version answers, with a notice."""
    prefix: list[str] = []
    if os.geteuid() == 0:  # root writes anywhere: drop its capabilities for the subprocesses
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv")
        prefix = [setpriv, "--bounding-set=-all", "--inh-caps=-all", "--"]
    (corpus_copy / "new.txt").write_text("Night cramps. Calf cramps at night are common.\n")
    before = version(index)
    for path in [index, *index.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        run = finish(sub.start("ask", QUESTION, "--json", "--index", index, "--corpus",
                               corpus_copy, prefix=prefix))
        answer = run.answer()
        assert answer["passages"] and "new" not in {p["doc_id"] for p in answer["passages"]}
        assert run.err_lines == [
            f"Cannot update the index in {index} (the corpus changed): Permission denied; "
            "answering from the previous complete version."]
        assert version(index) == before
    finally:
        for path in [index, *index.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
