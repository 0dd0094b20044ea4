"""Reading a corpus folder into documents with exact, decodable text.

Offsets everywhere in crampqa refer to :attr:`Document.text`, the decoded text
of a file (for HTML, the visible text extracted by a real parser). That text is
stored with the index so every citation can be checked later.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from crampqa.chunking import no_passage_reason
from crampqa.config import max_file_bytes
from crampqa.errors import CorpusError

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm")
SOURCES_FILE = "sources.json"
#: The key of ``sources.json`` that describes the corpus itself, not a document:
#: ``{"_corpus": {"note": "…"}}`` replaces the note shown under every answer.
CORPUS_KEY = "_corpus"
#: Files in a corpus folder that are metadata, not documents.
METADATA_FILES = frozenset({SOURCES_FILE, "README", "README.md", "LICENSE", ".gitkeep"})


@dataclass(frozen=True)
class Document:
    """One source document: its stable ID, readable title and decoded text."""

    doc_id: str
    title: str
    text: str
    sha256: str
    path: str = ""
    url: str = ""


@dataclass
class CorpusReport:
    """What reading a corpus found: the documents and every file it skipped."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    #: the note shown under every answer, when ``sources.json`` declares one
    note: str = ""


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of raw bytes."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


#: Control characters that text files do not contain (tab, newlines and form feed aside).
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def decode_bytes(data: bytes) -> str:
    """Decode a document's bytes; raise ``UnicodeError`` for binary data.

    UTF-8 (with or without BOM) and UTF-16/UTF-32 with a BOM are read as such; other
    8-bit text falls back to cp1252/Latin-1, the usual encoding of old files. Data
    with NUL bytes (without a UTF-16/32 BOM) or more than 1% control characters is
    binary.
    """
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        text = data.decode("utf-32")
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16")
    elif b"\x00" in data:
        raise UnicodeError("binary data (NUL bytes)")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError:
                text = data.decode("latin-1")
    controls = len(_CONTROL.findall(text))
    if "\x00" in text or controls > max(8, len(text) // 100):
        raise UnicodeError("binary data (control characters)")
    return text


#: Tags whose content is never shown.
_HIDDEN_TAGS = frozenset({"script", "style", "noscript", "template"})
#: Tags that start and end a line of text.
_BLOCK_TAGS = frozenset({
    "p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "br", "section", "article",
    "header", "footer", "table", "ul", "ol", "blockquote", "pre"})
#: Table cells, followed by " | ".
_CELL_TAGS = frozenset({"td", "th"})


class _Exit:
    """A marker on the walk's stack: what to do once a tag's children are done."""

    def __init__(self, text: str = "", unmute: bool = False, end_title: bool = False) -> None:
        self.text, self.unmute, self.end_title = text, unmute, end_title


def html_to_text(html: str) -> tuple[str, str]:
    """Visible text and ``<title>`` of an HTML page, via BeautifulSoup's parser.

    One iterative walk over the parsed tree (linear in its size, any depth): the text of
    every string outside script/style/noscript/template and the first ``<head>``, a line
    break around each block tag and `` | `` after each table cell; then whitespace is
    collapsed line by line and blank lines are dropped.
    """
    from bs4 import BeautifulSoup, CData, NavigableString, Tag

    soup = BeautifulSoup(html, "html.parser")
    main_types = soup.interesting_string_types or {NavigableString, CData}
    pieces: list[str] = []
    title_parts: list[str] = []
    title_types: set[type] | None = None  # set while inside the first <title>
    title_done = head_done = False
    muted = 0  # inside the first <head>: nothing is shown
    stack: list[object] = list(reversed(soup.contents))
    while stack:
        item = stack.pop()
        if isinstance(item, _Exit):
            if item.text and not muted:
                pieces.append(item.text)
            muted -= item.unmute
            if item.end_title:
                title_types, title_done = None, True
            continue
        if isinstance(item, NavigableString):
            kind = type(item)
            if title_types is not None and kind in title_types and item.strip():
                title_parts.append(item.strip())
            if not muted and kind in main_types:
                pieces.append(str(item))
            continue
        if not isinstance(item, Tag) or item.name in _HIDDEN_TAGS:
            continue
        exits: list[_Exit] = []
        if item.name == "title" and not title_done and title_types is None:
            title_types = set(item.interesting_string_types or {NavigableString, CData})
            exits.append(_Exit(end_title=True))
        if item.name == "head" and not head_done:
            head_done = True
            muted += 1
            exits.append(_Exit(unmute=True))
        if item.name in _BLOCK_TAGS:
            if not muted:
                pieces.append("\n")
            exits.append(_Exit("\n"))
        elif item.name in _CELL_TAGS:
            exits.append(_Exit(" | "))
        stack.extend(exits)
        stack.extend(reversed(item.contents))
    lines = [" ".join(line.split()) for line in "".join(pieces).splitlines()]
    text = "\n".join(line for line in lines if line)
    return text, " ".join(title_parts)


def _title_from_text(text: str, suffix: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line if len(line) <= 90 else line[:87].rstrip() + "…"
    return ""


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISDIR(mode):
        return "folder"
    return "special file"


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB" if size >= 100_000 else f"{size} bytes"


def read_regular_file(path: Path, limit: int) -> bytes | str:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes, else the
    reason to skip it. FIFOs, sockets and devices are never opened for reading, so they
    cannot block; the type is checked again on the open file."""
    def too_large(size: str) -> str:
        return (f"too large ({size}; the limit is {limit / 1_000_000:g} MB, set "
                "CRAMPQA_MAX_FILE_MB to change it)")

    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            return f"not a regular file ({_file_kind(info.st_mode)})"
        if info.st_size > limit:
            return too_large(_megabytes(info.st_size))
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # replaced between the two checks
            return f"not a regular file ({_file_kind(info.st_mode)})"
        chunks: list[bytes] = []
        size = 0
        while True:
            block = os.read(fd, 1 << 20)
            if not block:
                break
            size += len(block)
            if size > limit:  # the file grew while it was read
                return too_large(f"over {limit / 1_000_000:g} MB")
            chunks.append(block)
        return b"".join(chunks)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    finally:
        os.close(fd)


def _load_sources(folder: Path, report: CorpusReport) -> dict[str, dict[str, str]]:
    path = folder / SOURCES_FILE
    if not path.is_file():
        return {}
    try:
        inside = path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        inside = False
    if not inside:
        report.skipped.append((SOURCES_FILE, "symlink leading outside the corpus folder"))
        return {}
    data = read_regular_file(path, max_file_bytes())
    if isinstance(data, str):
        raise CorpusError(f"{path}: {data}; fix or remove it.")
    try:
        loaded = json.loads(data.decode("utf-8"))
    except ValueError as exc:
        raise CorpusError(f"{path}: not valid JSON ({exc}); fix or remove it.") from None
    if not isinstance(loaded, dict):
        raise CorpusError(f"{path}: expected an object mapping document IDs to metadata.")
    return {str(k): v if isinstance(v, dict) else {"title": str(v)} for k, v in loaded.items()}


def is_index_root(folder: Path) -> bool:
    """Whether ``folder`` is a crampqa index (its build lock, and ``CURRENT`` or a version
    folder: the names of :mod:`crampqa.store`), which is never part of a corpus: an index
    kept inside its corpus folder would otherwise change the corpus with every build."""
    try:
        if not (folder / ".lock").is_file():
            return False
        return (folder / "CURRENT").is_file() or any(
            p.is_dir() for p in folder.glob("v-*"))
    except OSError:
        return False


def walk_folders(
    folder: Path, on_error: Callable[[Path, OSError], None] | None = None
) -> Iterator[tuple[Path, list[str]]]:
    """``(folder, sorted file names)`` for ``folder`` and each sub-folder, depth first in
    name order (as ``os.walk``), without recursion, so any depth works. Hidden folders,
    links to folders and crampqa indexes (:func:`is_index_root`) are not entered; a
    folder that cannot be listed goes to ``on_error`` (or is passed over)."""
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as listing:
                entries = list(listing)
        except OSError as exc:
            if on_error is not None:
                on_error(current, exc)
            continue
        files: list[str] = []
        folders: list[str] = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
                enter = is_dir and not entry.is_symlink() and not entry.name.startswith(".")
            except OSError:
                is_dir = enter = False
            if not is_dir:
                files.append(entry.name)
            elif enter and not is_index_root(current / entry.name):
                folders.append(entry.name)
        yield current, sorted(files)
        stack.extend(current / name for name in sorted(folders, reverse=True))


def web_url(url: str) -> str:
    """``url`` when it is an ``http`` or ``https`` address, else "" (a ``javascript:`` or
    ``data:`` URL from ``sources.json`` must never become a link)."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc \
            or any(unicodedata.category(ch) == "Cc" for ch in url):
        return ""
    return url


def safe_path(rel: str) -> str:
    """``rel`` with the bytes of a name that is not valid UTF-8 written as ``\\xNN``:
    text that can be printed and stored as JSON (file names are read as ``os.fsdecode``
    does, so such bytes arrive as lone surrogates)."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def file_name_problem(rel: str) -> str | None:
    """Why a document's relative path cannot give a usable source ID, or None.

    A name that is not valid UTF-8 cannot be stored; one with a line break or another
    control character, or a part that starts or ends with a space, gives a source ID
    that cannot be shown, copied and opened again."""
    if safe_path(rel) != rel:
        return "file name is not valid UTF-8; rename it"
    if any(unicodedata.category(ch) == "Cc" for ch in rel):
        return "file name has a line break or another control character; rename it"
    stem = rel.rsplit(".", 1)[0] if "." in rel.rsplit("/", 1)[-1] else rel
    if any(part != part.strip() for part in (*rel.split("/"), *stem.split("/"))):
        return "file or folder name starts or ends with a space; rename it"
    return None


def _walk(folder: Path, report: CorpusReport) -> Iterator[Path]:
    root = folder.resolve()

    def unreadable(path: Path, exc: OSError) -> None:
        if path == folder:
            raise CorpusError(f"Cannot read the corpus folder {folder}: "
                              f"{exc.strerror or exc}; check its permissions.")
        rel = safe_path(path.relative_to(folder).as_posix())
        report.skipped.append((rel + "/", f"unreadable folder ({exc.strerror or exc})"))

    for dirpath, filenames in walk_folders(folder, unreadable):
        for name in filenames:
            path = dirpath / name
            rel = safe_path(path.relative_to(folder).as_posix())
            if name.startswith(".") or (dirpath == folder and name in METADATA_FILES):
                continue
            if path.is_symlink():
                try:
                    target = path.resolve()
                except (OSError, RuntimeError):  # a symlink loop
                    report.skipped.append((rel, "broken symlink"))
                    continue
                if not target.is_relative_to(root):
                    report.skipped.append((rel, "symlink leading outside the corpus folder"))
                    continue
            yield path


def require_corpus_dir(folder: Path) -> None:
    """Raise a clear :class:`CorpusError` unless ``folder`` is an existing folder."""
    if not folder.exists():
        raise CorpusError(f"Corpus folder not found: {folder} (use --corpus DIR).")
    if not folder.is_dir():
        raise CorpusError(f"Corpus path is not a folder: {folder} (use --corpus DIR).")


def no_documents_error(folder: Path, skipped: list[tuple[str, str]]) -> CorpusError:
    """The error for a corpus with nothing to index, naming the skipped files and why."""
    listed = "".join(f"{path} ({reason}); " for path, reason in skipped[:5])
    if len(skipped) > 5:
        listed = f"{listed[:-2]} and {len(skipped) - 5} more; "
    return CorpusError(f"No readable documents in {folder} (supported: .txt, .md, .html, BEIR "
                       f"corpus.jsonl); {listed}{len(skipped)} file(s) skipped.")


def unique_ids(candidates: list[tuple[str, str]]) -> list[str]:
    """Document IDs for ``(id without suffix, relative path)`` pairs, all different.

    A file keeps its path without the suffix as ID unless another file claims the same
    ID; then every file involved is named by its full relative path (paths are unique),
    repeated until nothing is shared: ``a.md`` and ``a.txt`` become ``a.md`` and
    ``a.txt``, and ``a.md.txt`` then becomes ``a.md.txt``.
    """
    ids = [stem for stem, _ in candidates]
    while True:
        owners: dict[str, list[int]] = {}
        for i, doc_id in enumerate(ids):
            owners.setdefault(doc_id, []).append(i)
        clashes = [i for group in owners.values() if len(group) > 1 for i in group
                   if ids[i] != candidates[i][1]]
        if not clashes:
            return ids
        for i in clashes:
            ids[i] = candidates[i][1]


def read_corpus(folder: Path, max_bytes: int | None = None) -> CorpusReport:
    """Read every supported file under ``folder``; skip the rest with a reason each.

    Files larger than ``max_bytes`` (default: :func:`crampqa.config.max_file_bytes`) and
    anything but regular files are skipped, as are documents that give no passage.
    """
    require_corpus_dir(folder)
    limit = max_file_bytes() if max_bytes is None else max_bytes
    report = CorpusReport()
    try:
        with os.scandir(folder) as listing:
            names = sorted(entry.name for entry in listing)
    except OSError as exc:
        raise CorpusError(f"Cannot read the corpus folder {folder}: {exc.strerror or exc}; "
                          "check its permissions.") from None
    sources = _load_sources(folder, report)
    about = sources.pop(CORPUS_KEY, {})
    report.note = " ".join(str(about.get("note") or "").split())
    beir = [folder / n for n in names if n in ("corpus.jsonl", "corpus.jsonl.gz")
            and (folder / n).is_file()]
    if beir:
        for doc in read_beir_documents(beir[0]):
            reason = no_passage_reason(doc.text)
            if reason is None:
                report.documents.append(doc)
            else:
                report.skipped.append((doc.path, reason))
        return report
    found: list[tuple[str, str, Document]] = []  # (ID without suffix, path, document)
    for path in _walk(folder, report):
        rel = path.relative_to(folder).as_posix()
        suffix = path.suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            report.skipped.append((safe_path(rel),
                                   f"unsupported file type '{safe_path(suffix) or 'none'}'"))
            continue
        problem = file_name_problem(rel)  # only a document needs a usable source ID
        if problem is not None:
            report.skipped.append((safe_path(rel), problem))
            continue
        data = read_regular_file(path, limit)
        if isinstance(data, str):
            report.skipped.append((rel, data))
            continue
        if not data.strip():
            report.skipped.append((rel, "empty file"))
            continue
        try:
            raw = decode_bytes(data)
        except UnicodeError as exc:
            report.skipped.append((rel, f"not text ({exc})"))
            continue
        html_title = ""
        if suffix in (".html", ".htm"):
            text, html_title = html_to_text(raw)
        else:
            text = raw
        if not text.strip():
            report.skipped.append((rel, "no visible text"))
            continue
        reason = no_passage_reason(text)
        if reason is not None:
            report.skipped.append((rel, reason))
            continue
        stem = Path(rel).with_suffix("").as_posix()
        title = html_title or _title_from_text(text, suffix)
        found.append((stem, rel, Document(stem, title, text, sha256_bytes(data), rel)))
    ids = unique_ids([(stem, rel) for stem, rel, _ in found])
    for doc_id, (stem, _, doc) in zip(ids, found, strict=True):
        # metadata by the final ID; a renamed file also takes its entry without suffix
        meta = sources.get(doc_id) or sources.get(stem, {})
        title = str(meta.get("title") or doc.title)
        report.documents.append(Document(doc_id, title, doc.text, doc.sha256, doc.path,
                                         web_url(str(meta.get("url", "")))))
    return report


def read_beir_documents(path: Path) -> list[Document]:
    """Documents of a BEIR ``corpus.jsonl(.gz)``: text is ``title + blank line + text``."""
    from crampqa.errors import EvalError
    from crampqa.evaluation.datasets import iter_beir_corpus

    documents = []
    try:
        for doc_id, title, body in iter_beir_corpus(path):
            text = f"{title}\n\n{body}" if title else body
            if text.strip():
                digest = sha256_bytes(text.encode("utf-8"))
                documents.append(Document(doc_id, title or doc_id, text, digest,
                                          f"{path.name}#{doc_id}"))
    except EvalError as exc:
        raise CorpusError(exc.message) from None
    return documents


def corpus_fingerprint(folder: Path) -> list[list[Any]]:
    """Cheap stat-based fingerprint of a corpus folder (paths, sizes, mtimes)."""
    rows: list[list[Any]] = []
    for dirpath, filenames in walk_folders(folder):
        for name in filenames:
            path = dirpath / name
            try:
                stat = path.stat()
            except OSError:
                continue
            rows.append([safe_path(path.relative_to(folder).as_posix()), stat.st_size,
                         stat.st_mtime_ns])
    return rows


class CorpusState:
    """A corpus folder as it is now: its fingerprint, taken at once, and its documents,
    read only when asked for (an unchanged fingerprint needs no reading)."""

    def __init__(self, folder: Path) -> None:
        require_corpus_dir(folder)
        self.folder = folder
        # taken before reading, so a file edited while it is read is seen as changed later
        self.fingerprint = corpus_fingerprint(folder)
        self._report: CorpusReport | None = None

    @property
    def is_read(self) -> bool:
        """Whether the documents were read already."""
        return self._report is not None

    def report(self) -> CorpusReport:
        """The documents and skipped files (read on first use)."""
        if self._report is None:
            self._report = read_corpus(self.folder)
        return self._report

    def document_hashes(self) -> dict[str, str]:
        """Document ID -> SHA-256, as a manifest records them."""
        return {d.doc_id: d.sha256 for d in self.report().documents}

    def skipped(self) -> list[list[str]]:
        """Skipped files as ``[path, reason]`` pairs, as a manifest records them."""
        return [list(s) for s in self.report().skipped]
