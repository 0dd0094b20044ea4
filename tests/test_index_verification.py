"""Large index files (the ONNX model, big arrays) are hashed once per version and again
whenever they change, so that a same-size corruption is refused instead of answering
wrongly; `crampqa serve` and `info --verify` hash every file."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import crampqa.store
from crampqa import CrampQA
from crampqa.store import VERIFIED_DIR, prune_versions
from crampqa.web.launch import free_port
from tests.conftest import CORPUS
from tests.support import QUESTION, REBUILD, cli, version

LIMIT = 64  # in these tests, every array but the smallest counts as large


def flip_last_byte(path: Path) -> bytes:
    """Corrupt a file without changing its size; returns the good bytes."""
    good = path.read_bytes()
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))
    return good


def among(rels: set[str], hashed: list[str]) -> set[str]:
    """Those of the relative paths ``rels`` that were hashed."""
    return {rel for rel in rels if any(path.endswith("/" + rel) for path in hashed)}


def record(index: Path) -> dict[str, Any]:
    path = index / VERIFIED_DIR / f"{version(index).name}.json"
    files = json.loads(path.read_text(encoding="utf-8"))["files"]
    assert isinstance(files, dict)
    return files


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths of the files hashed from now on; files over 64 bytes count as large."""
    monkeypatch.setattr(crampqa.store, "FULL_HASH_MAX", LIMIT)
    names: list[str] = []
    real: Callable[[Path], str] = crampqa.store.sha256_file

    def counting(path: Path) -> str:
        names.append(path.as_posix())
        return real(path)

    monkeypatch.setattr(crampqa.store, "sha256_file", counting)
    return names


# ---- the ONNX model of a real index ----------------------------------------------------


def test_a_same_size_corruption_of_the_onnx_model_is_refused(real_index: Path,
                                                             tmp_path: Path) -> None:
    index = tmp_path / "index"
    shutil.copytree(real_index, index)
    model = version(index) / "encoder" / "model.onnx"
    assert model.stat().st_size > crampqa.store.FULL_HASH_MAX
    ok = cli("ask", QUESTION, "--json", "--index", index, "--corpus", CORPUS)
    assert ok.answer()["passages"] and not ok.answer()["abstained"]
    assert "encoder/model.onnx" in record(index)  # hashed on first open, recorded
    flip_last_byte(model)
    for command in (["ask", QUESTION, "--json"], ["info"]):
        assert cli(*command, "--index", index, "--corpus", CORPUS).error(4) == (
            f"Index file encoder/model.onnx is corrupted (checksum mismatch); {REBUILD}.")


# ---- once per version ------------------------------------------------------------------


@pytest.mark.usefixtures("fake_default_model")
def test_large_files_are_hashed_once_per_version(corpus: Path, tmp_path: Path,
                                                 hashed: list[str]) -> None:
    index = tmp_path / "index"
    CrampQA.build(corpus, index)
    large = set(record(index))  # the build records what it hashed
    assert {"embeddings.npy", "sentence_embeddings.npy"} <= large
    hashed.clear()
    CrampQA.open(corpus, index, auto_build=False)
    assert not among(large, hashed)  # not hashed again: recorded by the build
    copy = tmp_path / "copy"
    shutil.copytree(index, copy)  # other inodes: the record does not vouch for them
    hashed.clear()
    CrampQA.open(corpus, copy, auto_build=False)
    assert among(large, hashed) == large
    hashed.clear()
    CrampQA.open(corpus, copy, auto_build=False)
    assert not among(large, hashed)


@pytest.mark.usefixtures("fake_default_model")
@pytest.mark.parametrize("keep_mtime", [False, True], ids=["written", "mtime-restored"])
def test_a_same_size_corruption_of_a_large_file_is_refused(
        index: Path, corpus: Path, hashed: list[str], keep_mtime: bool) -> None:
    assert cli("ask", QUESTION, "--json", "--index", index, "--corpus", corpus).answer()
    path = version(index) / "embeddings.npy"
    before = path.stat()
    good = flip_last_byte(path)
    if keep_mtime:  # the mtime can be set back; the ctime cannot
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    message = cli("ask", QUESTION, "--json", "--index", index, "--corpus", corpus).error(
        4, "index_error")
    assert message == f"Index file embeddings.npy is corrupted (checksum mismatch); {REBUILD}."
    path.write_bytes(good)
    assert cli("ask", QUESTION, "--json", "--index", index, "--corpus", corpus).answer()


@pytest.mark.usefixtures("fake_default_model")
def test_an_unwritable_record_only_costs_hashing_again(
        index: Path, corpus: Path, hashed: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(crampqa.store.os, "replace", refuse)
    for _ in range(2):
        hashed.clear()
        assert cli("ask", QUESTION, "--json", "--index", index, "--corpus", corpus).answer()
        assert among({"embeddings.npy"}, hashed)
    assert not list((index / VERIFIED_DIR).glob(".*"))  # no temporary file left


@pytest.mark.usefixtures("fake_default_model")
def test_records_of_pruned_versions_go(corpus: Path, tmp_path: Path,
                                       hashed: list[str]) -> None:
    index = tmp_path / "index"
    first = CrampQA.build(corpus, index).folder
    for _ in range(2):
        CrampQA.build(corpus, index, rebuild=True)
    assert not first.exists()
    names = {p.stem for p in (index / VERIFIED_DIR).glob("*.json")}
    assert first.name not in names and version(index).name in names
    prune_versions(index, keep=version(index).name)
    assert len(list((index / VERIFIED_DIR).glob("*.json"))) == 2


# ---- full verification: serve at start-up, info --verify -------------------------------


def _bit_rot(index: Path) -> None:
    """Corrupt embeddings.npy and make the record vouch for it (as a disk's bit rot, which
    changes no file times, would): only a full verification can tell."""
    path = version(index) / "embeddings.npy"
    flip_last_byte(path)
    record_path = index / VERIFIED_DIR / f"{version(index).name}.json"
    files = json.loads(record_path.read_text(encoding="utf-8"))["files"]
    st = path.stat()
    files["embeddings.npy"]["stat"] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino,
                                       st.st_dev]
    record_path.write_text(json.dumps({"files": files}), encoding="utf-8")


@pytest.mark.usefixtures("fake_default_model")
def test_serve_and_info_verify_hash_every_file(index: Path, corpus: Path, hashed: list[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    assert cli("ask", QUESTION, "--json", "--index", index, "--corpus", corpus).answer()
    _bit_rot(index)
    assert cli("ask", QUESTION, "--json", "--index", index, "--corpus", corpus).answer()
    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append(app))
    expected = f"Index file embeddings.npy is corrupted (checksum mismatch); {REBUILD}."
    port = str(free_port())
    assert cli("serve", "--port", port, "--index", index, "--corpus", corpus).error(4) \
        == expected
    assert not started
    assert cli("info", "--verify", "--index", index, "--corpus", corpus).error(4) == expected
    flip_last_byte(version(index) / "embeddings.npy")  # repaired
    run = cli("info", "--verify", "--index", index, "--corpus", corpus)
    # the verdict first, on stdout
    assert run.code == 0 and run.out.startswith("OK: the manifest and all ")
    assert "match their SHA-256 checksums" in run.out.splitlines()[0]
    assert cli("serve", "--port", port, "--index", index, "--corpus", corpus).code == 0
    assert len(started) == 1
