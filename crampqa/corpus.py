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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crampqa.errors import CorpusError

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm")
SOURCES_FILE = "sources.json"
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


def html_to_text(html: str) -> tuple[str, str]:
    """Visible text and ``<title>`` of an HTML page, via BeautifulSoup's parser."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        if tag.name == "head":
            continue
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    if soup.head is not None:
        soup.head.decompose()
    blocks = ("p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "br", "section",
              "article", "header", "footer", "table", "ul", "ol", "blockquote", "pre")
    for tag in soup.find_all(blocks):
        tag.insert_before("\n")
        tag.insert_after("\n")
    for tag in soup.find_all(["td", "th"]):
        tag.insert_after(" | ")
    lines = [" ".join(line.split()) for line in soup.get_text().splitlines()]
    text = "\n".join(line for line in lines if line)
    return text, title


def _title_from_text(text: str, suffix: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line if len(line) <= 90 else line[:87].rstrip() + "…"
    return ""


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
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CorpusError(f"{path}: not valid JSON ({exc}); fix or remove it.") from None
    if not isinstance(data, dict):
        raise CorpusError(f"{path}: expected an object mapping document IDs to metadata.")
    return {str(k): v if isinstance(v, dict) else {"title": str(v)} for k, v in data.items()}


def _walk(folder: Path, report: CorpusReport) -> Iterator[Path]:
    root = folder.resolve()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            if name.startswith(".") or (Path(dirpath) == folder and name in METADATA_FILES):
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


def read_corpus(folder: Path) -> CorpusReport:
    """Read every supported file under ``folder``; skip the rest with a reason each."""
    require_corpus_dir(folder)
    report = CorpusReport()
    sources = _load_sources(folder, report)
    beir = sorted(p for p in folder.iterdir() if p.name in ("corpus.jsonl", "corpus.jsonl.gz"))
    if beir:
        report.documents.extend(read_beir_documents(beir[0]))
        return report
    found: list[tuple[str, Path, Document]] = []
    for path in _walk(folder, report):
        rel = path.relative_to(folder).as_posix()
        suffix = path.suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            report.skipped.append((rel, f"unsupported file type '{suffix or 'none'}'"))
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            report.skipped.append((rel, f"unreadable ({exc.strerror or exc})"))
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
        doc_id = Path(rel).with_suffix("").as_posix()
        meta = sources.get(doc_id, {})
        title = str(meta.get("title") or html_title or _title_from_text(text, suffix))
        doc = Document(doc_id, title, text, sha256_bytes(data), rel, str(meta.get("url", "")))
        found.append((doc_id, path, doc))
    counts: dict[str, int] = {}
    for doc_id, _, _ in found:
        counts[doc_id] = counts.get(doc_id, 0) + 1
    for doc_id, _, doc in found:
        if counts[doc_id] > 1:  # same stem, different suffix: keep the suffix in the ID
            doc = Document(doc.path, doc.title, doc.text, doc.sha256, doc.path, doc.url)
        report.documents.append(doc)
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
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            try:
                stat = path.stat()
            except OSError:
                continue
            rows.append([path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns])
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
