"""Building an index version: read, chunk, embed, store.

Only new or changed documents are embedded; passages of unchanged documents
(same content hash, same model and chunker) are copied from the previous
version. A model or chunker change forces a full rebuild.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crampqa.chunking import KINDS, Chunk, chunk_text
from crampqa.config import IndexSettings
from crampqa.corpus import (
    CorpusReport,
    Document,
    no_documents_error,
    read_corpus,
    walk_folders,
)
from crampqa.embedding import Embedder, get_embedder, model_path, weights_sha256, weights_stat
from crampqa.errors import CorpusError, IndexError_
from crampqa.lexical import LexicalIndex
from crampqa.store import (
    FORMAT_VERSION,
    P_DOC,
    IndexData,
    build_lock,
    commit_version,
    current_version,
    load_version,
    new_version_folder,
    prune_versions,
    write_arrays,
    write_documents,
)

Progress = Callable[[str, int, int], None]  # (stage, done, total)

EMBED_BATCH = 256


@dataclass
class BuildSummary:
    """What a build did, for the CLI summary line."""

    folder: Path
    documents: int = 0
    passages: int = 0
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    full_rebuild_reason: str | None = None
    seconds: float = 0.0
    embedded_passages: int = 0
    dense: dict[str, Any] = field(default_factory=dict)  # type and parameters built
    up_to_date: bool = False  # nothing changed: the current version was kept as it is


def embedding_text(doc: Document, chunk: Chunk) -> str:
    """What the model sees for a passage: its section heading and table header, then
    the passage. Shown text stays the bare verbatim slice."""
    parts = []
    if chunk.heading:
        parts.append(doc.text[chunk.heading[0] : chunk.heading[1]])
    if chunk.context:
        parts.append(doc.text[chunk.context[0] : chunk.context[1]])
    parts.append(doc.text[chunk.start : chunk.end])
    return "\n".join(parts)


def _sentence_text(doc: Document, chunk: Chunk, span: tuple[int, int]) -> str:
    if chunk.context:
        return doc.text[chunk.context[0] : chunk.context[1]] + "\n" + doc.text[span[0] : span[1]]
    return doc.text[span[0] : span[1]]


def _content_key(settings: IndexSettings, weights: str) -> dict[str, Any]:
    return {**settings.content_key(), "weights_sha256": weights}


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
            rows.append([path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns])
    return rows


def _previous(root: Path, key: dict[str, Any]) -> tuple[IndexData | None, str | None]:
    """The previous version if its contents can be reused, else a reason for a full build."""
    try:
        folder = current_version(root)
        if folder is None:
            return None, None
        data = load_version(folder)
    except IndexError_ as exc:
        return None, f"the previous index is unusable ({exc.message})"
    old_key = data.manifest.get("content_key")
    if old_key != key:
        if old_key and old_key.get("model") != key["model"]:
            return None, f"the model changed ({old_key.get('model')} -> {key['model']})"
        if old_key and old_key.get("weights_sha256") != key["weights_sha256"]:
            return None, "the model weights changed"
        return None, "the chunker settings changed"
    return data, None


def build_index(
    corpus_dir: Path,
    index_root: Path,
    settings: IndexSettings | None = None,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    rebuild: bool = False,
    wait_for_lock: bool = False,
) -> BuildSummary:
    """Build (or incrementally update) the index for ``corpus_dir`` in ``index_root``."""
    started = time.perf_counter()
    settings = settings or IndexSettings()
    # taken before reading, so a file edited during the build is seen as changed next time
    fingerprint = corpus_fingerprint(corpus_dir)
    report = read_corpus(corpus_dir)
    if not report.documents:
        raise no_documents_error(corpus_dir, report.skipped)
    embedder = embedder or get_embedder(settings.model)
    weights = weights_sha256() if embedder.name == settings.model and _is_real(embedder) else \
        "fake:" + embedder.name
    key = _content_key(settings, weights)
    with build_lock(index_root, wait=wait_for_lock):
        previous, reason = (None, "--rebuild was asked for") if rebuild else \
            _previous(index_root, key)
        summary = BuildSummary(index_root, skipped=report.skipped, full_rebuild_reason=reason)
        if previous is not None and _up_to_date(previous, report, settings, embedder,
                                                corpus_dir, fingerprint):
            # nothing would differ but the timestamp: keep the current version (no new
            # folder, so open services and their answer caches stay valid)
            prune_versions(index_root, keep=previous.folder.name)  # e.g. a killed build's
            summary.folder = previous.folder
            summary.up_to_date = True
            summary.documents = summary.unchanged = len(report.documents)
            summary.passages = int(previous.passages.shape[0])
            summary.dense = dict(previous.manifest.get("dense") or {})
            summary.seconds = time.perf_counter() - started
            return summary
        tmp = new_version_folder(index_root)
        try:
            _build_into(tmp, report, settings, embedder, previous, summary, progress)
            manifest = _manifest(report, settings, embedder, key, corpus_dir, summary,
                                 fingerprint)
            summary.folder = commit_version(index_root, tmp, manifest)
        except BaseException:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            raise
    summary.seconds = time.perf_counter() - started
    return summary


def _up_to_date(
    previous: IndexData,
    report: CorpusReport,
    settings: IndexSettings,
    embedder: Embedder,
    corpus_dir: Path,
    fingerprint: list[list[Any]],
) -> bool:
    """Whether a build would write the same index as ``previous`` (same format, settings,
    model files, corpus folder, files and documents, skipped files)."""
    manifest = previous.manifest
    corpus = manifest.get("corpus", {})
    model = manifest.get("model", {})
    stat = weights_stat(model_path()) if _is_real(embedder) else None
    return (
        manifest.get("format_version") == FORMAT_VERSION
        and manifest.get("settings") == json.loads(json.dumps(settings.to_dict()))
        and model.get("name") == embedder.name
        and model.get("weights_stat") == stat
        and corpus.get("dir") == str(corpus_dir.resolve())
        and corpus.get("fingerprint") == fingerprint
        and corpus.get("documents") == {d.doc_id: d.sha256 for d in report.documents}
        and corpus.get("skipped") == [list(s) for s in report.skipped]
    )


def _is_real(embedder: Embedder) -> bool:
    from crampqa.embedding import SentenceTransformerEmbedder

    return isinstance(embedder, SentenceTransformerEmbedder)


def _build_into(
    tmp: Path,
    report: CorpusReport,
    settings: IndexSettings,
    embedder: Embedder,
    previous: IndexData | None,
    summary: BuildSummary,
    progress: Progress | None,
) -> None:
    documents = report.documents
    old_by_id: dict[str, int] = previous.doc_index if previous else {}
    old_rows: dict[int, np.ndarray] = {}
    if previous is not None:
        order = np.argsort(previous.passages[:, P_DOC], kind="stable")
        docs_sorted = previous.passages[order, P_DOC]
        bounds = np.searchsorted(docs_sorted, np.arange(len(previous.documents) + 1))
        for i in range(len(previous.documents)):
            old_rows[i] = order[bounds[i] : bounds[i + 1]]
    seen: set[str] = set()
    passages: list[list[int]] = []
    sentences: list[list[int]] = []
    embed_jobs: list[tuple[int, str]] = []  # (passage row, text) to embed
    sent_jobs: list[tuple[int, str]] = []
    reused_pass: list[tuple[int, int]] = []  # (new row, old row)
    reused_sent: list[tuple[int, int]] = []
    for d, doc in enumerate(documents):
        seen.add(doc.doc_id)
        old = old_by_id.get(doc.doc_id)
        if previous is not None and old is not None and \
                previous.documents[old].sha256 == doc.sha256:
            summary.unchanged += 1
            rows = old_rows[old]
            old_sent = previous.sentences
            for r in rows:
                new_row = len(passages)
                row = [int(x) for x in previous.passages[r]]
                row[P_DOC] = d
                passages.append(row)
                reused_pass.append((new_row, int(r)))
                lo, hi = np.searchsorted(old_sent[:, 0], [r, r + 1])  # sorted by passage
                for s in range(int(lo), int(hi)):
                    reused_sent.append((len(sentences), s))
                    sentences.append([new_row, int(old_sent[s, 1]), int(old_sent[s, 2])])
            continue
        if old is None:
            summary.added += 1
        else:
            summary.changed += 1
        for chunk in chunk_text(doc.text, settings.chunk):
            row_id = len(passages)
            head = chunk.heading or (-1, -1)
            ctx = chunk.context or (-1, -1)
            passages.append([d, chunk.start, chunk.end, KINDS.index(chunk.kind),
                             head[0], head[1], ctx[0], ctx[1]])
            embed_jobs.append((row_id, embedding_text(doc, chunk)))
            for span in chunk.sentences:
                sent_jobs.append((len(sentences), _sentence_text(doc, chunk, span)))
                sentences.append([row_id, span[0], span[1]])
    if not passages:  # read_corpus keeps only documents that give passages
        raise CorpusError(f"The corpus gave no passages to index ({len(documents)} "
                          "document(s) read); add documents with text.")
    summary.removed = len(set(old_by_id) - seen)
    summary.documents = len(documents)
    summary.passages = len(passages)
    summary.embedded_passages = len(embed_jobs)
    dim = embedder.dim
    embeddings = np.zeros((len(passages), dim), dtype=np.float32)
    sentence_vectors = np.zeros((len(sentences), dim), dtype=np.float32)
    if previous is not None:
        for new, old_row in reused_pass:
            embeddings[new] = previous.embeddings[old_row]
        for new, old_row in reused_sent:
            sentence_vectors[new] = previous.sentence_embeddings[old_row]
    _embed(embedder, embed_jobs, embeddings, "passages", progress)
    _embed(embedder, sent_jobs, sentence_vectors, "sentences", progress)
    passages_arr = np.asarray(passages, dtype=np.int64).reshape(-1, 8)
    sentences_arr = np.asarray(sentences, dtype=np.int64).reshape(-1, 3)
    write_arrays(tmp, passages=passages_arr, sentences=sentences_arr, embeddings=embeddings,
                 sentence_embeddings=sentence_vectors)
    write_documents(tmp, documents)
    if progress:
        progress("lexical index", 0, 1)
    lexical = LexicalIndex.build([
        documents[int(p[P_DOC])].title + "\n" + _lexical_from_row(documents, p)
        for p in passages_arr
    ])
    (tmp / "bm25").mkdir()
    lexical.save(tmp / "bm25")
    from crampqa.dense import DenseIndex

    dense = DenseIndex.build(embeddings, settings.ann)
    dense.save(tmp / "dense.faiss")
    summary.dense = dense.describe()
    export = getattr(embedder, "export", None)
    reusable = previous.folder / "encoder" if previous is not None else None
    if export is not None and reusable is not None and (reusable / "model.onnx").is_file():
        # same model weights (the content key matched): the export would be identical
        import shutil

        shutil.copytree(reusable, tmp / "encoder")
    elif export is not None:
        if progress:
            progress("exporting query encoder", 0, 1)
        export(tmp / "encoder")
    if progress:
        progress("lexical index", 1, 1)


def _lexical_from_row(documents: list[Document], row: np.ndarray) -> str:
    doc = documents[int(row[P_DOC])]
    parts = []
    if row[4] >= 0:
        parts.append(doc.text[int(row[4]) : int(row[5])])
    if row[6] >= 0:
        parts.append(doc.text[int(row[6]) : int(row[7])])
    parts.append(doc.text[int(row[1]) : int(row[2])])
    return "\n".join(parts)


def _embed(
    embedder: Embedder,
    jobs: list[tuple[int, str]],
    out: np.ndarray,
    stage: str,
    progress: Progress | None,
) -> None:
    total = len(jobs)
    if progress:
        progress(stage, 0, total)
    # longest first keeps padding per batch small
    jobs = sorted(jobs, key=lambda job: len(job[1]), reverse=True)
    for begin in range(0, total, EMBED_BATCH):
        batch = jobs[begin : begin + EMBED_BATCH]
        vectors = embedder.encode([text for _, text in batch], batch_size=32)
        out[[row for row, _ in batch]] = vectors
        if progress:
            progress(stage, min(begin + EMBED_BATCH, total), total)


def _manifest(
    report: CorpusReport,
    settings: IndexSettings,
    embedder: Embedder,
    key: dict[str, Any],
    corpus_dir: Path,
    summary: BuildSummary,
    fingerprint: list[list[Any]],
) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {"name": embedder.name, "weights_sha256": key["weights_sha256"],
                  "weights_stat": weights_stat(model_path()) if _is_real(embedder) else None,
                  "dim": embedder.dim},
        "settings": settings.to_dict(),
        "content_key": key,
        "corpus": {
            "dir": str(corpus_dir.resolve()),
            "fingerprint": fingerprint,
            "documents": {d.doc_id: d.sha256 for d in report.documents},
            "skipped": [list(s) for s in report.skipped],
        },
        "counts": {"documents": summary.documents, "passages": summary.passages},
        "dense": summary.dense,
    }


def manifest_json(manifest: dict[str, Any]) -> str:
    """Pretty JSON of a manifest (for `crampqa info`)."""
    shown = {k: v for k, v in manifest.items() if k != "files"}
    shown["corpus"] = {k: v for k, v in manifest["corpus"].items() if k != "fingerprint"}
    return json.dumps(shown, indent=2, ensure_ascii=False)
