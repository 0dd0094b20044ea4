"""The index on disk: a folder of plain files, written atomically.

Layout of an index root (``indexes/default``)::

    CURRENT                  name of the complete version readers should open
    .lock                    held by a builder (flock) while it writes
    .verified/<version>.json which files over 4 MiB were hashed, and the size, times and
                             inode they had then (see verify_files)
    v-<time>-<pid>/          one complete version
        manifest.json        format version, model + weights hash, settings, corpus hashes,
                             per-file SHA-256 and sizes
        dense.faiss          FAISS index of passage embeddings (faiss.write_index)
        embeddings.npy       passage embeddings, float32 (n, d)
        passages.npy         int64 (n, 8), read through PassageTable: doc, start, end,
                             kind, heading span, context span
        sentences.npy        int64 (m, 3): passage, start, end
        sentence_embeddings.npy  float32 (m, d)
        documents.jsonl      doc_id, title, path, url, sha256 and the decoded text
        bm25/                bm25s files (JSON + .npy)
        encoder/             ONNX copy of the model for the query path

A build writes a new version folder, then replaces ``CURRENT`` with
``os.replace`` (atomic), so readers see the old or the new index, never a
half-written one. Nothing is pickled: arrays load with ``allow_pickle=False``.

A running service holds a :class:`VersionLease` (a shared ``flock`` on the version
folder) on the version it answers from; :func:`prune_versions` skips leased versions.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from crampqa.chunking import KINDS, Chunk
from crampqa.config import IndexSettings
from crampqa.corpus import Document, sha256_file, web_url
from crampqa.errors import (
    NO_SPACE_ERRNOS,
    REBUILD_HINT,
    DiskFullError,
    IndexError_,
    IndexLockedError,
    IndexNotWritableError,
)
from crampqa.manifest import FORMAT_VERSION, MANIFEST, Manifest

CURRENT_FILE = "CURRENT"
LOCK_FILE = ".lock"
#: Files up to this size are hashed whenever an index is opened; larger ones (the ONNX
#: model, big arrays) once per version: when first opened (or built), recorded in
#: ``.verified/``, and again whenever their size, times or inode change, or with a full
#: verification (`crampqa info --verify`, `crampqa serve` at start-up).
FULL_HASH_MAX = 4 << 20
#: Folder of the index root holding one verification record per version.
VERIFIED_DIR = ".verified"


@dataclass(frozen=True)
class Excerpt:
    """A verbatim slice of a document: ``text == document_text[start:end]``."""

    start: int
    end: int
    text: str


class PassageTable:
    """The passages of an index version: one int64 row each, over the stored documents.

    Columns: document number, passage start and end, kind, heading span and context
    span (a table row's header row); an absent span is ``(-1, -1)``. Only this class
    knows the column order; everything else asks it by name.
    """

    COLUMNS = ("doc", "start", "end", "kind", "heading_start", "heading_end",
               "context_start", "context_end")
    _DOC, _START, _END, _KIND, _HEAD_START, _HEAD_END, _CTX_START, _CTX_END = range(8)

    def __init__(self, array: NDArray[np.int64], documents: Sequence[Document]) -> None:
        self.array = array
        self.documents = documents

    @classmethod
    def from_rows(cls, rows: list[list[int]], documents: Sequence[Document]) -> PassageTable:
        """A table from rows made by :meth:`chunk_row` or :meth:`moved_row`."""
        array = np.asarray(rows, dtype=np.int64).reshape(-1, len(cls.COLUMNS))
        return cls(array, documents)

    @classmethod
    def chunk_row(cls, doc: int, chunk: Chunk) -> list[int]:
        """The row of a chunk of document number ``doc``."""
        head = chunk.heading or (-1, -1)
        ctx = chunk.context or (-1, -1)
        return [doc, chunk.start, chunk.end, KINDS.index(chunk.kind), head[0], head[1],
                ctx[0], ctx[1]]

    def moved_row(self, row: int, doc: int) -> list[int]:
        """Passage ``row`` as a row of document number ``doc`` (same spans)."""
        values = [int(x) for x in self.array[row]]
        values[self._DOC] = doc
        return values

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def is_well_formed(self) -> bool:
        """Right shape, and every row points at a stored document."""
        array = self.array
        if array.ndim != 2 or array.shape[1] != len(self.COLUMNS):
            return False
        docs = array[:, self._DOC]
        return not len(docs) or (int(docs.min()) >= 0 and int(docs.max()) < len(self.documents))

    # ---- columns, for vectorised code -------------------------------------------------
    @property
    def docs(self) -> NDArray[np.int64]:
        """Document number of every passage."""
        return self.array[:, self._DOC]

    @property
    def kinds(self) -> NDArray[np.int64]:
        """Kind number (an index into :data:`crampqa.chunking.KINDS`) of every passage."""
        return self.array[:, self._KIND]

    def rows_of(self, doc: int) -> list[int]:
        """The passage rows of document number ``doc``, in order."""
        return [int(row) for row in np.flatnonzero(self.docs == doc)]

    def rows_by_doc(self) -> list[NDArray[np.intp]]:
        """For each document number, its passage rows in order."""
        order = np.argsort(self.docs, kind="stable")
        bounds = np.searchsorted(self.docs[order], np.arange(len(self.documents) + 1))
        return [order[bounds[i] : bounds[i + 1]] for i in range(len(self.documents))]

    # ---- one passage ------------------------------------------------------------------
    def doc_number(self, row: int) -> int:
        """The document number of passage ``row``."""
        return int(self.array[row, self._DOC])

    def doc(self, row: int) -> Document:
        """The document passage ``row`` comes from."""
        return self.documents[self.doc_number(row)]

    def span(self, row: int) -> tuple[int, int]:
        """Start and end offsets of passage ``row`` in its document."""
        values = self.array[row]
        return int(values[self._START]), int(values[self._END])

    def kind(self, row: int) -> str:
        """Passage kind name (text, list or table_row)."""
        return KINDS[int(self.array[row, self._KIND])]

    def text(self, row: int) -> str:
        """Verbatim text of passage ``row``."""
        start, end = self.span(row)
        return self.doc(row).text[start:end]

    def _excerpt(self, row: int, column: int) -> Excerpt | None:
        start, end = int(self.array[row, column]), int(self.array[row, column + 1])
        return Excerpt(start, end, self.doc(row).text[start:end]) if start >= 0 else None

    def heading(self, row: int) -> Excerpt | None:
        """The section heading of passage ``row``, if it has one."""
        return self._excerpt(row, self._HEAD_START)

    def shown_heading(self, row: int) -> Excerpt | None:
        """The section heading of passage ``row`` as people see it: without Markdown's
        ``#`` markers, still a verbatim slice (the index keeps the whole line)."""
        from crampqa.chunking import heading_words

        found = self.heading(row)
        if found is None:
            return None
        start, end = heading_words(self.doc(row).text, found.start, found.end)
        return Excerpt(start, end, self.doc(row).text[start:end])

    def context(self, row: int) -> Excerpt | None:
        """The header row of the table that passage ``row`` belongs to, if any."""
        return self._excerpt(row, self._CTX_START)

    def source_id(self, row: int) -> str:
        """The citation of passage ``row``: ``doc_id#start-end``."""
        start, end = self.span(row)
        return f"{self.doc(row).doc_id}#{start}-{end}"

    def indexed_text(self, row: int) -> str:
        """What the model and BM25 see for a passage: its heading and table header, then
        the passage. Shown text stays the bare verbatim slice."""
        parts = [e.text for e in (self.heading(row), self.context(row)) if e is not None]
        parts.append(self.text(row))
        return "\n".join(parts)

    def bm25_text(self, row: int) -> str:
        """What BM25 indexes for a passage: the article title, then its indexed text."""
        return self.doc(row).title + "\n" + self.indexed_text(row)

    def overlaps(self, a: int, b: int) -> bool:
        """Whether passages ``a`` and ``b`` share characters of the same document."""
        if self.doc_number(a) != self.doc_number(b):
            return False
        (a_start, a_end), (b_start, b_end) = self.span(a), self.span(b)
        return a_start < b_end and b_start < a_end


@dataclass
class IndexData:
    """Everything an index version holds, in memory or memory-mapped."""

    folder: Path
    manifest: Manifest
    documents: list[Document]
    passages: PassageTable
    sentences: np.ndarray
    embeddings: np.ndarray
    sentence_embeddings: np.ndarray
    doc_index: dict[str, int] = field(default_factory=dict)

    @property
    def settings(self) -> IndexSettings:
        """The settings the index was built with."""
        return self.manifest.settings


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


def latest_version(root: Path) -> Path | None:
    """The newest complete version folder of ``root`` whose manifest loads, or None: what
    ``CURRENT`` named when only the pointer was lost (deleted, or a crash between renaming
    a version into place and writing the pointer)."""
    try:
        names = sorted((p.name for p in root.glob("v-*") if p.is_dir() and not p.is_symlink()),
                       reverse=True)
    except OSError:
        return None
    for name in names:
        try:
            Manifest.load(root / name)
        except IndexError_:
            continue
        return root / name
    return None


def point_current(root: Path, folder: Path) -> None:
    """Make ``CURRENT`` name ``folder`` (atomic: readers see the old or the new pointer)."""
    pointer_tmp = root / f".{CURRENT_FILE}.{os.getpid()}"
    with _writing(root):
        try:
            pointer_tmp.write_text(folder.name + "\n", encoding="utf-8")
            with pointer_tmp.open("rb") as handle:
                os.fsync(handle.fileno())
            os.replace(pointer_tmp, root / CURRENT_FILE)
        except BaseException:
            pointer_tmp.unlink(missing_ok=True)
            raise
    _fsync_dir(root)


@contextlib.contextmanager
def build_lock(root: Path, wait: bool = False) -> Iterator[None]:
    """Hold the root's build lock; raise :class:`IndexLockedError` if another build holds it."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        handle = (root / LOCK_FILE).open("a+")
    except OSError as exc:
        if exc.errno in NO_SPACE_ERRNOS:
            raise DiskFullError(root) from None
        raise IndexNotWritableError(
            f"Cannot write to the index folder {root}: {exc.strerror}; "
            "choose a writable folder with --index DIR.", str(exc.strerror or exc)
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
    """Turn a failed write into one clear :class:`IndexError_` (:class:`DiskFullError`
    for a full disk)."""
    try:
        yield
    except OSError as exc:
        if exc.errno in NO_SPACE_ERRNOS:
            raise DiskFullError(root) from None
        raise IndexNotWritableError(
            f"Cannot write the index in {root}: {exc.strerror or exc}; free some space or "
            "choose a writable folder with --index DIR.", str(exc.strerror or exc)
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


def checksums(folder: Path, verified: dict[str, dict[str, Any]] | None = None
              ) -> dict[str, dict[str, Any]]:
    """SHA-256 and size of every file in a version folder except the manifest; with
    ``verified``, also the verification record of its large files (see verify_files)."""
    result: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            rel = path.relative_to(folder).as_posix()
            stamp = _stamp(path)
            result[rel] = {"sha256": sha256_file(path), "size": stamp[0]}
            if verified is not None and stamp[0] > FULL_HASH_MAX:
                verified[rel] = {"sha256": result[rel]["sha256"], "stat": stamp}
    return result


def _stamp(path: Path) -> list[int]:
    """What changes whenever a file's bytes are written: size, mtime, ctime, inode."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _record_path(folder: Path) -> Path:
    return folder.parent / VERIFIED_DIR / f"{folder.name}.json"


def _read_record(folder: Path) -> dict[str, Any]:
    """The verification record of a version (empty when none or unreadable)."""
    try:
        data = json.loads(_record_path(folder).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return files if isinstance(files, dict) else {}


def record_search(folder: Path, search: dict[str, str]) -> Manifest:
    """Rewrite the ``search`` entry of a complete version's manifest (atomic: a reader
    sees the old or the new manifest). The entry says where candidates are searched, not
    what the version holds, so the version stays the same otherwise."""
    manifest = replace(Manifest.load(folder), search=dict(search))
    rewrite_manifest(folder, manifest)
    return manifest


def rewrite_manifest(folder: Path, manifest: Manifest) -> None:
    """Replace the manifest of a complete version folder (atomic: a reader sees the old
    or the new manifest)."""
    tmp = folder / f".{MANIFEST}.{os.getpid()}.{threading.get_ident()}"
    try:
        manifest.dump_to(tmp)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, folder / MANIFEST)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(folder)


def upgrade_manifest(folder: Path, manifest: Manifest) -> Manifest:
    """Seal the manifest of a version written in the previous format (without its own
    checksum), after hashing every file it lists; nothing else changes."""
    verify_files(folder, manifest, full=True)
    upgraded = replace(manifest, format_version=FORMAT_VERSION)
    rewrite_manifest(folder, upgraded)
    return upgraded


def _write_record(folder: Path, files: dict[str, dict[str, Any]]) -> None:
    """Record which large files were verified (atomic; skipped when the folder cannot be
    written: they are hashed again next time)."""
    path = _record_path(folder)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        path.parent.mkdir(exist_ok=True)
        tmp.write_text(json.dumps({"files": files}), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def commit_version(root: Path, tmp: Path, manifest: Manifest) -> Path:
    """Finish a version: manifest with checksums, fsync, rename, swap ``CURRENT``."""
    final = root / tmp.name.removeprefix(".tmp-")
    verified: dict[str, dict[str, Any]] = {}
    with _writing(root):
        manifest.with_files(checksums(tmp, verified)).dump(tmp)
        _fsync_tree(tmp)
        os.replace(tmp, final)  # the files keep their inode and times
        pointer_tmp = root / f".{CURRENT_FILE}.{os.getpid()}"
        try:
            _write_record(final, verified)
            pointer_tmp.write_text(final.name + "\n", encoding="utf-8")
            with pointer_tmp.open("rb") as handle:
                os.fsync(handle.fileno())
            os.replace(pointer_tmp, root / CURRENT_FILE)
        except BaseException:  # e.g. no space for the pointer: CURRENT is unchanged
            pointer_tmp.unlink(missing_ok=True)
            shutil.rmtree(final, ignore_errors=True)
            raise
    _fsync_dir(root)
    prune_versions(root, keep=final.name)
    return final


class VersionLease:
    """A shared ``flock`` on a version folder, held while a long-running reader (``crampqa
    serve``) answers from it: :func:`prune_versions` never removes a leased version.

    The lock is on the folder itself (nothing is written into it). Taking a lease fails
    with :class:`IndexError_` when the folder is gone or is being removed right now.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._fd: int | None = None
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            raise IndexError_(f"Index version {folder.name} in {folder.parent} is gone; "
                              f"{REBUILD_HINT}.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            # removed between open and lock (a prune that finished just then)?
            if os.stat(folder).st_ino != os.fstat(fd).st_ino:
                raise FileNotFoundError(folder)
        except OSError:
            os.close(fd)
            raise IndexError_(f"Index version {folder.name} in {folder.parent} is being "
                              f"removed; {REBUILD_HINT}.") from None
        self._fd = fd

    @property
    def held(self) -> bool:
        """Whether the lease is still held."""
        return self._fd is not None

    def release(self) -> None:
        """Let the version be pruned again (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:
        self.release()


def _remove_unleased(folder: Path) -> bool:
    """Remove a version folder unless a reader holds a :class:`VersionLease` on it."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a running service answers from it
        shutil.rmtree(folder, ignore_errors=True)  # holding the lock: no lease starts now
        return True
    finally:
        os.close(fd)


def prune_versions(root: Path, keep: str) -> None:
    """Remove older versions and abandoned temporary folders (keeps one previous version
    so that a reader that opened it a moment ago can finish, and every version a running
    service holds a :class:`VersionLease` on)."""
    versions = sorted(p for p in root.glob("v-*") if p.is_dir() and p.name != keep)
    for old in versions[:-1]:
        _remove_unleased(old)
    for tmp in root.glob(".tmp-v-*"):  # left by a build that was killed
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
    for pointer in root.glob(f".{CURRENT_FILE}.*"):
        pid = pointer.name.rsplit(".", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            pointer.unlink(missing_ok=True)
    for record in (root / VERIFIED_DIR).glob("*.json"):
        if not (root / record.stem).is_dir():
            record.unlink(missing_ok=True)


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


#: Files every version must list in its manifest (everything load_version reads itself).
REQUIRED_FILES = ("documents.jsonl", "passages.npy", "sentences.npy", "embeddings.npy",
                  "sentence_embeddings.npy", "dense.faiss", "bm25/size.json",
                  "bm25/params.index.json", "bm25/vocab.index.json", "bm25/data.csc.index.npy",
                  "bm25/indices.csc.index.npy", "bm25/indptr.csc.index.npy")


def verify_files(folder: Path, manifest: Manifest, full: bool = False) -> None:
    """Check every file the manifest lists: present, same size and same SHA-256.

    Files over :data:`FULL_HASH_MAX` are hashed once per version: the record in
    ``.verified/`` keeps each one's SHA-256 with its size, mtime, ctime and inode when
    it was hashed, and while those are unchanged it is not hashed again (a write, even
    one of the same size, changes the ctime). ``full`` hashes every file regardless.

    Also refuses what a builder never writes: a listed path that is a symlink or leads
    outside the folder, a required file the manifest does not list, and any file the
    manifest does not list (a planted pickle, say; nothing here is ever unpickled).
    """
    files = manifest.files
    if not files:
        raise IndexError_(f"The index manifest in {folder} lists no files; {REBUILD_HINT}.")
    missing = [name for name in REQUIRED_FILES if name not in files]
    if missing:
        raise IndexError_(f"The index manifest in {folder} does not list {missing[0]}; "
                          f"{REBUILD_HINT}.")
    root = folder.resolve()
    record = {} if full else _read_record(folder)
    verified: dict[str, dict[str, Any]] = {}
    for rel, info in files.items():
        path = folder / rel
        if not isinstance(info, dict) or path.is_symlink() \
                or not path.resolve().is_relative_to(root):
            raise IndexError_(f"The index manifest in {folder} names a path outside it or "
                              f"a link ({rel}); {REBUILD_HINT}.")
        try:
            stamp = _stamp(path)
        except OSError:
            raise IndexError_(f"Index file {rel} is missing in {folder}; {REBUILD_HINT}.") from None
        size = stamp[0]
        if size != info.get("size"):
            raise IndexError_(
                f"Index file {rel} is truncated or damaged (size {size}, expected "
                f"{info.get('size')}); {REBUILD_HINT}."
            )
        large = size > FULL_HASH_MAX
        seen = {"sha256": info.get("sha256"), "stat": stamp}
        if large and record.get(rel) == seen:
            verified[rel] = seen  # hashed before, untouched since
            continue
        try:
            digest = sha256_file(path)
        except OSError as exc:
            raise IndexError_(f"Cannot read index file {rel} in {folder}: {exc.strerror}; "
                              "check the folder's permissions.") from None
        if digest != info.get("sha256"):
            raise IndexError_(f"Index file {rel} is corrupted (checksum mismatch); {REBUILD_HINT}.")
        if large:
            verified[rel] = seen
    listed = {folder / rel for rel in files} | {folder / MANIFEST}
    for path in folder.rglob("*"):
        if path not in listed and (path.is_symlink() or not path.is_dir()):
            rel = path.relative_to(folder).as_posix()
            raise IndexError_(f"The index in {folder} holds a file its manifest does not list "
                              f"({rel}); remove it or {REBUILD_HINT}.")
    if verified != record:
        _write_record(folder, verified)


def load_version(folder: Path, verify_full: bool = False, upgrading: bool = False) -> IndexData:
    """Open a version folder: check the manifest and files, memory-map the arrays
    (``upgrading``: a manifest of the previous format is accepted, see
    :meth:`Manifest.load`)."""
    manifest = Manifest.load(folder, upgrading=upgrading)
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
                # an index written before URLs were checked may hold any scheme
                documents.append(Document(*fields[:5], web_url(fields[5])))
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
    passages = PassageTable(arrays.pop("passages"), documents)
    data = IndexData(folder, manifest, documents, passages, **arrays)
    data.doc_index = {doc.doc_id: i for i, doc in enumerate(documents)}
    _check_shapes(data)
    return data


def _check_shapes(data: IndexData) -> None:
    n = len(data.passages) if data.passages.array.ndim == 2 else -1
    ok = (
        data.passages.is_well_formed()
        and data.embeddings.shape[0] == n
        and data.sentences.ndim == 2 and data.sentences.shape[1] == 3
        and data.sentence_embeddings.shape[0] == data.sentences.shape[0]
        and data.manifest.passages == n
    )
    if not ok:
        raise IndexError_(f"The index in {data.folder} is inconsistent; {REBUILD_HINT}.")
