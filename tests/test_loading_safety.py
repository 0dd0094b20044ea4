"""Loading an index never unpickles, executes or follows a path taken from it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crampqa import CrampQA
from crampqa.manifest import seal
from crampqa.store import CURRENT_FILE, MANIFEST, sha256_file
from tests.support import (
    QUESTION,
    REBUILD,
    cli,
    object_npy,
    pickle_bomb,
    rewrite_checksums,
    version,
)

pytestmark = pytest.mark.usefixtures("fake_default_model")


# ---- safety of loading --------------------------------------------------------------


@pytest.mark.parametrize("name", ["passages.npy", "embeddings.npy",
                                  "bm25/data.csc.index.npy"])
def test_object_array_npy_is_refused_and_never_unpickled(name: str, index: Path,
                                                         tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    folder = version(index)
    (folder / name).write_bytes(object_npy(marker))
    assert cli("ask", QUESTION, "--index", index).error(4).startswith(f"Index file {name} is ")
    rewrite_checksums(folder)  # even when the manifest is made to agree
    message = cli("ask", QUESTION, "--json", "--index", index).error(4, "index_error")
    assert message.endswith(f"; {REBUILD}.")
    assert "cannot be read" in message or "damaged" in message
    assert not marker.exists()


def test_planted_pickle_is_refused_and_never_loaded(index: Path, corpus: Path,
                                                    tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    folder = version(index)
    for rel in ("index.pkl", "bm25/retriever.pickle"):
        (folder / rel).write_bytes(pickle_bomb(marker))
        assert cli("ask", QUESTION, "--index", index).error(4) == (
            f"The index in {folder} holds a file its manifest does not list ({rel}); "
            f"remove it or {REBUILD}.")
        (folder / rel).unlink()
    # listed in the manifest with a right checksum it is still never read
    (folder / "index.pkl").write_bytes(pickle_bomb(marker))
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"]["index.pkl"] = {}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    rewrite_checksums(folder)
    assert cli("ask", QUESTION, "--json", "--index", index, "--corpus", corpus).answer()
    assert not marker.exists()


def test_manifest_paths_outside_the_index_folder_are_refused(index: Path,
                                                             tmp_path: Path) -> None:
    folder = version(index)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"not part of the index")
    good = json.loads((folder / MANIFEST).read_text())
    info = {"sha256": sha256_file(outside), "size": outside.stat().st_size}
    for rel in ("../../outside.bin", str(outside)):
        manifest = json.loads(json.dumps(good))
        manifest["files"][rel] = info
        (folder / MANIFEST).write_bytes(seal(manifest))
        assert cli("ask", QUESTION, "--index", index).error(4) == (
            f"The index manifest in {folder} names a path outside it or a link ({rel}); "
            f"{REBUILD}.")
    # a listed file swapped for a link to an identical copy outside the folder
    (folder / MANIFEST).write_bytes(seal(good))
    copy = tmp_path / "passages-copy.npy"
    shutil.copy(folder / "passages.npy", copy)
    (folder / "passages.npy").unlink()
    (folder / "passages.npy").symlink_to(copy)
    assert "names a path outside it or a link (passages.npy)" in cli(
        "ask", QUESTION, "--index", index).error(4)
    # ... or dropped from the manifest so that its checks are skipped
    del good["files"]["passages.npy"]
    (folder / MANIFEST).write_bytes(seal(good))
    assert cli("ask", QUESTION, "--index", index).error(4) == (
        f"The index manifest in {folder} does not list passages.npy; {REBUILD}.")


def test_current_pointer_outside_the_index_folder_is_refused(index: Path,
                                                             tmp_path: Path) -> None:
    pointer = index / CURRENT_FILE
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(version(index), elsewhere)  # a complete, valid version outside
    for name in ("../elsewhere", str(elsewhere), ".", ".."):
        pointer.write_text(name + "\n")
        assert cli("ask", QUESTION, "--index", index).error(4) == (
            f"{pointer} is damaged; {REBUILD}.")
    (index / "v-link").symlink_to(elsewhere, target_is_directory=True)
    pointer.write_text("v-link\n")
    assert cli("ask", QUESTION, "--json", "--index", index).error(4, "index_error") == (
        f"Index version v-link named in {pointer} leads outside the index folder; {REBUILD}.")


_OPENED: list[str] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], str | Path):
        _OPENED.append(os.path.abspath(args[0]))


@contextlib.contextmanager
def opened_files() -> Iterator[list[str]]:
    """Every file Python opens inside the block (audit hook, installed once)."""
    global _OPENED
    if not getattr(sys, "_crampqa_audit_hook", False):
        sys.addaudithook(_audit)
        sys._crampqa_audit_hook = True  # type: ignore[attr-defined]
    _OPENED = []
    try:
        yield _OPENED
    finally:
        _OPENED = None


def test_passage_store_paths_are_never_followed(index: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("never to be read", encoding="utf-8")
    folder = version(index)
    docs = folder / "documents.jsonl"
    rows = [json.loads(line) for line in docs.read_text(encoding="utf-8").splitlines()]
    rows[0]["path"] = "../../secret.txt"
    rows[1]["path"] = str(secret)
    docs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["corpus"]["dir"] = str(tmp_path / "no-corpus")  # no staleness check to run
    (folder / MANIFEST).write_text(json.dumps(manifest))
    rewrite_checksums(folder)
    with opened_files() as opened:
        qa = CrampQA.open(None, index)
        qa.ask(QUESTION, k=5)
        shown = qa.sources()
    assert {s["path"] for s in shown} >= {"../../secret.txt", str(secret)}  # shown, as data
    mine = [p for p in opened if p.startswith(str(tmp_path))]
    assert mine and all(p.startswith(str(index) + os.sep) for p in mine), mine
