"""The index on disk: a folder of plain files, written atomically.

Layout of an index root (``indexes/default``)::

    CURRENT                  name of the complete version readers should open
    .lock                    held by a builder (flock) while it writes
    v-<time>-<pid>/          one complete version
        manifest.json        format version, model + weights hash, settings, corpus hashes,
                             per-file SHA-256 and sizes
        dense.faiss          FAISS index of passage embeddings (faiss.write_index)
        embeddings.npy       passage embeddings, float32 (n, d)
        passages.npy         int64 (n, 8): doc, start, end, kind, heading span, context span
        sentences.npy        int64 (m, 3): passage, start, end
        sentence_embeddings.npy  float32 (m, d)
        documents.jsonl      doc_id, title, path, url, sha256 and the decoded text
        bm25/                bm25s files (JSON + .npy)
        encoder/             ONNX copy of the model for the query path

A build writes a new version folder, then replaces ``CURRENT`` with
``os.replace`` (atomic), so readers see the old or the new index, never a
half-written one. Nothing is pickled: arrays load with ``allow_pickle=False``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crampqa.chunking import KINDS
from crampqa.config import IndexSettings
from crampqa.corpus import Document
from crampqa.errors import IndexError_, IndexLockedError

FORMAT_VERSION = 1
CURRENT_FILE = "CURRENT"
LOCK_FILE = ".lock"
MANIFEST = "manifest.json"
REBUILD_HINT = "run `crampqa index --rebuild`"
#: Files up to this size are hashed whenever an index is opened; larger ones (the ONNX
#: model, big arrays) only with a full verification (`crampqa info --verify`).
FULL_HASH_MAX = 4 << 20

# columns of passages.npy
P_DOC, P_START, P_END, P_KIND, P_HEAD_START, P_HEAD_END, P_CTX_START, P_CTX_END = range(8)


@dataclass
class IndexData:
    """Everything an index version holds, in memory or memory-mapped."""

    folder: Path
    manifest: dict[str, Any]
    documents: list[Document]
    passages: np.ndarray
    sentences: np.ndarray
    embeddings: np.ndarray
    sentence_embeddings: np.ndarray
    dense: Any = None  # faiss.Index
    doc_index: dict[str, int] = field(default_factory=dict)

    @property
    def settings(self) -> IndexSettings:
        """The settings the index was built with."""
        return IndexSettings.from_dict(self.manifest["settings"])

    def passage_text(self, row: int) -> str:
        """Verbatim text of passage ``row``."""
        p = self.passages[row]
        return self.documents[int(p[P_DOC])].text[int(p[P_START]) : int(p[P_END])]

    def kind(self, row: int) -> str:
        """Passage kind name (text, list or table_row)."""
        return KINDS[int(self.passages[row][P_KIND])]


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def current_version(root: Path) -> Path | None:
    """The complete version folder ``CURRENT`` names, or None when there is none."""
    pointer = root / CURRENT_FILE
    try:
        with pointer.open("rb") as handle:
            raw = handle.read(4096)  # a version name is short; more is damage
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IndexError_(f"Cannot read {pointer}: {exc.strerror}; {REBUILD_HINT}.") from None
    try:
        name = raw.decode("utf-8").strip()
    except UnicodeDecodeError:  # random bytes: damaged, and `crampqa index` repairs it
        name = ""
    if not name or len(name) > 255 or "/" in name or "\\" in name or name.startswith(".") \
            or not name.isprintable():
        raise IndexError_(f"{pointer} is damaged; {REBUILD_HINT}.")
    folder = root / name
    if folder.is_symlink() or (folder.is_dir() and folder.resolve().parent != root.resolve()):
        raise IndexError_(f"Index version {name} named in {pointer} leads outside the index "
                          f"folder; {REBUILD_HINT}.")
    if not folder.is_dir():
        raise IndexError_(f"Index version {name} named in {pointer} is missing; {REBUILD_HINT}.")
    return folder


@contextlib.contextmanager
def build_lock(root: Path, wait: bool = False) -> Iterator[None]:
    """Hold the root's build lock; raise :class:`IndexLockedError` if another build holds it."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        handle = (root / LOCK_FILE).open("a+")
    except OSError as exc:
        raise IndexError_(
            f"Cannot write to the index folder {root}: {exc.strerror}; "
            "choose a writable folder with --index DIR."
        ) from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise IndexLockedError(
                f"Another crampqa process is building the index in {root}; "
                "wait for it to finish and try again."
            ) from None
        yield
    finally:
        handle.close()


def new_version_folder(root: Path) -> Path:
    """A fresh, hidden folder to build a version in."""
    stamp = f"{time.strftime('%Y%m%d%H%M%S')}{time.time_ns() % 10**9:09d}"
    folder = root / f".tmp-v-{stamp}-{os.getpid()}"
    with _writing(root):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    return folder


@contextlib.contextmanager
def _writing(root: Path) -> Iterator[None]:
    """Turn a failed write into one clear :class:`IndexError_` (read-only folder, full disk)."""
    try:
        yield
    except OSError as exc:
        raise IndexError_(
            f"Cannot write the index in {root}: {exc.strerror or exc}; free some space or "
            "choose a writable folder with --index DIR."
        ) from None


def write_arrays(folder: Path, **arrays: np.ndarray) -> None:
    """Save each array as ``<name>.npy`` without pickle."""
    with _writing(folder.parent):
        for name, array in arrays.items():
            np.save(folder / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)


def write_documents(folder: Path, documents: list[Document]) -> None:
    """Write the passage store's documents, one JSON object per line."""
    with _writing(folder.parent), (folder / "documents.jsonl").open("w", encoding="utf-8") \
            as handle:
        for doc in documents:
            row = {"doc_id": doc.doc_id, "title": doc.title, "path": doc.path, "url": doc.url,
                   "sha256": doc.sha256, "text": doc.text}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def checksums(folder: Path) -> dict[str, dict[str, Any]]:
    """SHA-256 and size of every file in a version folder except the manifest."""
    result: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            rel = path.relative_to(folder).as_posix()
            result[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return result


def commit_version(root: Path, tmp: Path, manifest: dict[str, Any]) -> Path:
    """Finish a version: manifest with checksums, fsync, rename, swap ``CURRENT``."""
    manifest = dict(manifest)
    final = root / tmp.name.removeprefix(".tmp-")
    with _writing(root):
        manifest["files"] = checksums(tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), "utf-8")
        _fsync_tree(tmp)
        os.replace(tmp, final)
        pointer_tmp = root / f".{CURRENT_FILE}.{os.getpid()}"
        pointer_tmp.write_text(final.name + "\n", encoding="utf-8")
        with pointer_tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(pointer_tmp, root / CURRENT_FILE)
    _fsync_dir(root)
    prune_versions(root, keep=final.name)
    return final


def prune_versions(root: Path, keep: str) -> None:
    """Remove older versions and abandoned temporary folders (keeps one previous version
    so that a reader that opened it a moment ago can finish)."""
    versions = sorted(p for p in root.glob("v-*") if p.is_dir() and p.name != keep)
    for old in versions[:-1]:
        shutil.rmtree(old, ignore_errors=True)
    for tmp in root.glob(".tmp-v-*"):  # left by a build that was killed
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
    for pointer in root.glob(f".{CURRENT_FILE}.*"):
        pid = pointer.name.rsplit(".", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            pointer.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder)


#: Top-level manifest entries and the JSON type each must have.
MANIFEST_SCHEMA: dict[str, type] = {
    "model": dict, "settings": dict, "content_key": dict, "corpus": dict, "counts": dict,
    "files": dict,
}
#: Files every version must list in its manifest (everything load_version reads itself).
REQUIRED_FILES = ("documents.jsonl", "passages.npy", "sentences.npy", "embeddings.npy",
                  "sentence_embeddings.npy", "dense.faiss", "bm25/size.json",
                  "bm25/params.index.json", "bm25/vocab.index.json", "bm25/data.csc.index.npy",
                  "bm25/indices.csc.index.npy", "bm25/indptr.csc.index.npy")


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a version folder, checked for format version and shape."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexError_(f"The index in {folder} has no manifest; {REBUILD_HINT}.") from None
    except PermissionError as exc:
        raise IndexError_(f"Cannot read {path}: {exc.strerror}; check the folder's "
                          "permissions.") from None
    except (OSError, ValueError):
        raise IndexError_(f"The index manifest {path} is damaged; {REBUILD_HINT}.") from None
    if not isinstance(manifest, dict) or "format_version" not in manifest:
        raise IndexError_(f"The index manifest {path} is damaged; {REBUILD_HINT}.")
    version = manifest["format_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise IndexError_(f"The index manifest {path} is damaged (format_version is "
                          f"{json.dumps(version)[:40]}, not a whole number); {REBUILD_HINT}.")
    if version > FORMAT_VERSION:
        raise IndexError_(
            f"The index in {folder} was written by a newer crampqa (format {version}, "
            f"this one reads {FORMAT_VERSION}); upgrade crampqa or {REBUILD_HINT}."
        )
    if version < FORMAT_VERSION:
        raise IndexError_(
            f"The index in {folder} uses old format {version}; {REBUILD_HINT}."
        )
    bad = [key for key, kind in MANIFEST_SCHEMA.items() if not isinstance(manifest.get(key), kind)]
    if bad or not isinstance(manifest["model"].get("name"), str) \
            or not isinstance(manifest["corpus"].get("documents"), dict) \
            or not all(isinstance(manifest["settings"].get(part, {}), dict)
                       for part in ("chunk", "retrieval")):
        raise IndexError_(f"The index manifest {path} is damaged ({', '.join(bad) or 'model'} "
                          f"missing or malformed); {REBUILD_HINT}.")
    return manifest


def verify_files(folder: Path, manifest: dict[str, Any], full: bool = False) -> None:
    """Check every file the manifest lists: present, same size and, with ``full``
    or for small files, same SHA-256. Large files are hashed only with ``full``.

    Also refuses what a builder never writes: a listed path that is a symlink or leads
    outside the folder, a required file the manifest does not list, and any file the
    manifest does not list (a planted pickle, say; nothing here is ever unpickled).
    """
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise IndexError_(f"The index manifest in {folder} lists no files; {REBUILD_HINT}.")
    missing = [name for name in REQUIRED_FILES if name not in files]
    if missing:
        raise IndexError_(f"The index manifest in {folder} does not list {missing[0]}; "
                          f"{REBUILD_HINT}.")
    root = folder.resolve()
    for rel, info in files.items():
        path = folder / rel
        if not isinstance(info, dict) or path.is_symlink() \
                or not path.resolve().is_relative_to(root):
            raise IndexError_(f"The index manifest in {folder} names a path outside it or "
                              f"a link ({rel}); {REBUILD_HINT}.")
        try:
            size = path.stat().st_size
        except OSError:
            raise IndexError_(f"Index file {rel} is missing in {folder}; {REBUILD_HINT}.") from None
        if size != info.get("size"):
            raise IndexError_(
                f"Index file {rel} is truncated or damaged (size {size}, expected "
                f"{info.get('size')}); {REBUILD_HINT}."
            )
        try:
            digest = sha256_file(path) if full or size <= FULL_HASH_MAX else None
        except OSError as exc:
            raise IndexError_(f"Cannot read index file {rel} in {folder}: {exc.strerror}; "
                              "check the folder's permissions.") from None
        if digest is not None and digest != info.get("sha256"):
            raise IndexError_(f"Index file {rel} is corrupted (checksum mismatch); {REBUILD_HINT}.")
    listed = {folder / rel for rel in files} | {folder / MANIFEST}
    for path in folder.rglob("*"):
        if path not in listed and (path.is_symlink() or not path.is_dir()):
            rel = path.relative_to(folder).as_posix()
            raise IndexError_(f"The index in {folder} holds a file its manifest does not list "
                              f"({rel}); remove it or {REBUILD_HINT}.")


def load_version(folder: Path, verify_full: bool = False) -> IndexData:
    """Open a version folder: check the manifest and files, memory-map the arrays."""
    manifest = read_manifest(folder)
    verify_files(folder, manifest, full=verify_full)
    try:
        documents = []
        with (folder / "documents.jsonl").open(encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                fields = (row["doc_id"], row["title"], row["text"], row["sha256"],
                          row.get("path", ""), row.get("url", ""))
                if not all(isinstance(value, str) for value in fields):
                    raise ValueError("documents.jsonl holds a malformed row")
                documents.append(Document(*fields))
        # Plain ndarray views of the memory maps: still mapped, not copied, but without
        # np.memmap's Python-level __getitem__/__array_wrap__ on every row and slice
        # taken while ranking (about 0.3 ms of a warm ask).
        arrays: dict[str, Any] = {
            name: np.asarray(np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False))
            for name in ("passages", "sentences", "embeddings", "sentence_embeddings")
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IndexError_(f"The index in {folder} cannot be read ({exc}); {REBUILD_HINT}.") \
            from None
    data = IndexData(folder, manifest, documents, **arrays)
    data.doc_index = {doc.doc_id: i for i, doc in enumerate(documents)}
    _check_shapes(data)
    return data


def _check_shapes(data: IndexData) -> None:
    n = data.passages.shape[0]
    ok = (
        data.passages.ndim == 2 and data.passages.shape[1] == 8
        and data.embeddings.shape[0] == n
        and data.sentences.ndim == 2 and data.sentences.shape[1] == 3
        and data.sentence_embeddings.shape[0] == data.sentences.shape[0]
        and data.manifest["counts"].get("passages") == n
    )
    if not ok:
        raise IndexError_(f"The index in {data.folder} is inconsistent; {REBUILD_HINT}.")
    if n and (data.passages[:, P_DOC].max() >= len(data.documents)
              or data.passages[:, P_DOC].min() < 0):
        raise IndexError_(f"The index in {data.folder} is inconsistent; {REBUILD_HINT}.")
