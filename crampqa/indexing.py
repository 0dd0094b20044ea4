"""Building an index version in three stages: plan, embed, write.

:func:`crampqa.manifest.freshness` compares the current version with what a build would
use now. When nothing changed, nothing is written. Otherwise the *plan* lists the new
version's passages and which of them come from the previous version (unchanged
documents: same content hash, same model and chunker) and which must be embedded; the
*embed* stage fills the vectors; the *write* stage saves arrays, BM25, FAISS and the
query encoder into a new version folder, which is then swapped in atomically. A model
or chunker change forces a full rebuild.

Chunking and embedding go through a :class:`Runner`: :class:`LocalRunner` does them in
this process; ``crampqa.ray_build.RayRunner`` (``--engine ray``) fans them out on a Ray
cluster. Planning and writing stay here either way, so both give the same version.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from crampqa.chunking import Chunk, chunk_text
from crampqa.config import (
    BuildEngine,
    ChunkSettings,
    EngineSettings,
    IndexSettings,
    Progress,
    bundled_corpus_dir,
    bundled_index_dir,
)
from crampqa.corpus import CorpusState, Document, no_documents_error
from crampqa.documents import embed_documents, record, write_document_level
from crampqa.embedding import Embedder, get_embedder
from crampqa.errors import (
    CorpusError,
    CorpusMismatchError,
    DiskFullError,
    IndexError_,
    is_disk_full,
)
from crampqa.lexical import LexicalIndex
from crampqa.manifest import (
    FORMAT_VERSION,
    Action,
    CorpusRecord,
    Freshness,
    IndexInputs,
    Manifest,
    freshness,
)
from crampqa.progress import announce
from crampqa.store import (
    IndexData,
    PassageTable,
    build_lock,
    commit_version,
    current_version,
    latest_version,
    load_version,
    new_version_folder,
    point_current,
    prune_versions,
    upgrade_manifest,
    verify_files,
    write_arrays,
    write_documents,
)

EMBED_BATCH = 256

Job = tuple[int, str]  # (row to fill, text to embed)


class Runner(Protocol):
    """Does a build's two heavy steps: chunking documents and embedding texts."""

    def chunk(self, documents: list[Document], settings: ChunkSettings) -> list[list[Chunk]]:
        """The chunks of each document, in the order given."""
        ...

    def embed(self, embedder: Embedder, jobs: list[Job], out: NDArray[np.float32],
              stage: str, progress: Progress | None) -> None:
        """Fill ``out[row]`` with the vector of each job's text, reporting ``stage``."""
        ...


class LocalRunner:
    """Chunks and embeds in this process (the default engine)."""

    def chunk(self, documents: list[Document], settings: ChunkSettings) -> list[list[Chunk]]:
        """The chunks of each document, in the order given."""
        return [chunk_text(doc.text, settings) for doc in documents]

    def embed(self, embedder: Embedder, jobs: list[Job], out: NDArray[np.float32],
              stage: str, progress: Progress | None) -> None:
        """Embed in batches of :data:`EMBED_BATCH`, longest texts first."""
        _embed(embedder, jobs, out, stage, progress)


@contextmanager
def open_runner(engine: EngineSettings | None, model: str) -> Iterator[Runner]:
    """The runner for ``engine``; a Ray runner is connected here and let go at the end."""
    if engine is None or engine.engine is BuildEngine.LOCAL:
        yield LocalRunner()
        return
    from crampqa.ray_build import ray_runner  # only here: a local build never imports Ray

    with ray_runner(engine, model) as runner:
        yield runner


def check_engine(engine: EngineSettings | None) -> None:
    """Fail early (before reading the corpus) when the engine cannot be used here."""
    if engine is not None and engine.engine is BuildEngine.RAY:
        from crampqa.ray_build import require_ray

        require_ray()


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
    #: what updating the search backend did (Milvus), for the CLI; None: nothing to say
    search_note: str | None = None
    document_level: bool = True  # the version has document vectors (crampqa.documents)
    #: the version's manifest was of the previous format and was sealed in place
    upgraded_manifest: bool = False


@dataclass
class BuildPlan:
    """What a new version holds, and which of it is copied from the previous version."""

    documents: list[Document]
    passages: PassageTable
    sentences: NDArray[np.int64]  # (passage row, start, end), in passage order
    passage_jobs: list[Job]
    sentence_jobs: list[Job]
    reused_passages: list[tuple[int, int]] = field(default_factory=list)  # (new, old row)
    reused_sentences: list[tuple[int, int]] = field(default_factory=list)
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0


def _sentence_text(doc: Document, chunk: Chunk, span: tuple[int, int]) -> str:
    if chunk.context:
        return doc.text[chunk.context[0] : chunk.context[1]] + "\n" + doc.text[span[0] : span[1]]
    return doc.text[span[0] : span[1]]


def plan_build(
    documents: list[Document], settings: IndexSettings, previous: IndexData | None,
    runner: Runner | None = None,
) -> BuildPlan:
    """Chunk new and changed documents (with ``runner``, by default here); take unchanged
    ones' rows from ``previous``."""
    old_by_id: dict[str, int] = previous.doc_index if previous is not None else {}
    old_rows = previous.passages.rows_by_doc() if previous is not None else []

    def unchanged(doc: Document) -> bool:
        old = old_by_id.get(doc.doc_id)
        return previous is not None and old is not None and \
            previous.documents[old].sha256 == doc.sha256

    chunks_of: dict[int, list[Chunk]] | None = None  # None: chunk here, one at a time
    if runner is not None and not isinstance(runner, LocalRunner):
        to_chunk = [d for d, doc in enumerate(documents) if not unchanged(doc)]
        chunked = runner.chunk([documents[d] for d in to_chunk], settings.chunk)
        chunks_of = dict(zip(to_chunk, chunked, strict=True))
    rows: list[list[int]] = []
    sentences: list[list[int]] = []
    new_rows: list[int] = []
    sentence_jobs: list[Job] = []
    reused_pass: list[tuple[int, int]] = []
    reused_sent: list[tuple[int, int]] = []
    counts = {"added": 0, "changed": 0, "unchanged": 0}
    for d, doc in enumerate(documents):
        old = old_by_id.get(doc.doc_id)
        if previous is not None and old is not None and unchanged(doc):
            counts["unchanged"] += 1
            old_sent = previous.sentences
            for r in old_rows[old]:
                new_row = len(rows)
                rows.append(previous.passages.moved_row(int(r), d))
                reused_pass.append((new_row, int(r)))
                lo, hi = np.searchsorted(old_sent[:, 0], [r, r + 1])  # sorted by passage
                for s in range(int(lo), int(hi)):
                    reused_sent.append((len(sentences), s))
                    sentences.append([new_row, int(old_sent[s, 1]), int(old_sent[s, 2])])
            continue
        counts["added" if old is None else "changed"] += 1
        for chunk in (chunks_of[d] if chunks_of is not None
                      else chunk_text(doc.text, settings.chunk)):
            row_id = len(rows)
            rows.append(PassageTable.chunk_row(d, chunk))
            new_rows.append(row_id)
            for span in chunk.sentences:
                sentence_jobs.append((len(sentences), _sentence_text(doc, chunk, span)))
                sentences.append([row_id, span[0], span[1]])
    if not rows:  # read_corpus keeps only documents that give passages
        raise CorpusError(f"The corpus gave no passages to index ({len(documents)} "
                          "document(s) read); add documents with text.")
    table = PassageTable.from_rows(rows, documents)
    return BuildPlan(
        documents=documents,
        passages=table,
        sentences=np.asarray(sentences, dtype=np.int64).reshape(-1, 3),
        passage_jobs=[(row, table.indexed_text(row)) for row in new_rows],
        sentence_jobs=sentence_jobs,
        reused_passages=reused_pass,
        reused_sentences=reused_sent,
        removed=len(set(old_by_id) - {doc.doc_id for doc in documents}),
        **counts,
    )


def embed(
    plan: BuildPlan, embedder: Embedder, previous: IndexData | None, progress: Progress | None,
    runner: Runner | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Passage and sentence vectors: copied where reused, embedded (with ``runner``, by
    default here) where new."""
    dim = embedder.dim
    passages = np.zeros((len(plan.passages), dim), dtype=np.float32)
    sentences = np.zeros((len(plan.sentences), dim), dtype=np.float32)
    if previous is not None:
        for out, pairs, old in ((passages, plan.reused_passages, previous.embeddings),
                                (sentences, plan.reused_sentences,
                                 previous.sentence_embeddings)):
            if pairs:
                new_rows, old_rows = zip(*pairs, strict=True)
                out[list(new_rows)] = old[list(old_rows)]
    runner = runner or LocalRunner()
    embed_jobs(runner, embedder, plan.passage_jobs, passages, "passages", progress)
    embed_jobs(runner, embedder, plan.sentence_jobs, sentences, "sentences", progress)
    return passages, sentences


def embed_jobs(runner: Runner, embedder: Embedder, jobs: list[Job], out: NDArray[np.float32],
               stage: str, progress: Progress | None) -> None:
    """Fill ``out[row]`` for every job, embedding each distinct text once (a corpus
    repeats boilerplate: "Key Points", a shared list item, a duplicated document) and
    copying its vector to the other rows of the same text."""
    first: dict[str, int] = {}
    unique: list[Job] = []
    rows: list[int] = []
    sources: list[int] = []
    for row, text in jobs:
        k = first.get(text)
        if k is None:
            k = first[text] = len(unique)
            unique.append((k, text))
        rows.append(row)
        sources.append(k)
    if len(unique) == len(jobs):
        runner.embed(embedder, jobs, out, stage, progress)
        return
    vectors = np.zeros((len(unique), out.shape[1]), dtype=np.float32)
    runner.embed(embedder, unique, vectors, stage, progress)
    out[rows] = vectors[sources]


def _embed(
    embedder: Embedder,
    jobs: list[Job],
    out: NDArray[np.float32],
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


def write_version(
    tmp: Path,
    plan: BuildPlan,
    vectors: tuple[NDArray[np.float32], NDArray[np.float32]],
    settings: IndexSettings,
    progress: Progress | None,
) -> dict[str, Any]:
    """Write everything but the manifest into ``tmp``; returns the dense index's
    description."""
    embeddings, sentence_vectors = vectors
    write_arrays(tmp, passages=plan.passages.array, sentences=plan.sentences,
                 embeddings=embeddings, sentence_embeddings=sentence_vectors)
    write_documents(tmp, plan.documents)
    table = plan.passages
    if progress:
        progress("lexical index", 0, 1)
    lexical = LexicalIndex.build([table.bm25_text(row) for row in range(len(table))])
    (tmp / "bm25").mkdir()
    lexical.save(tmp / "bm25")
    if progress:
        progress("lexical index", 1, 1)
    from crampqa.dense import DenseIndex

    if progress:
        progress("dense index", 0, 1)
    dense = DenseIndex.build(embeddings, settings.ann)
    dense.save(tmp / "dense.faiss")
    if progress:
        progress("dense index", 1, 1)
    return dense.describe()


def prepare_encoder(
    tmp: Path, embedder: Embedder, index_root: Path, previous: IndexData | None,
    progress: Progress | None,
) -> Embedder:
    """Put the query encoder (the ONNX export of ``embedder``'s weights) into
    ``tmp/encoder`` and return the embedder the build embeds with: one that runs that
    export (:class:`~crampqa.embedding.OnnxBuildEmbedder`), or ``embedder`` itself when
    it has no export (another model, a test's fake).

    The export is made once per model weights: it is copied from the previous version,
    from the index's current version (also on ``--rebuild``), or from the export cache
    (:func:`crampqa.encoder_cache.cached_export`) when one of them holds the same weights'.
    """
    export: Callable[[Path], None] | None = getattr(embedder, "export", None)
    if export is None:
        return embedder
    from crampqa.embedding import OnnxBuildEmbedder, SentenceTransformerEmbedder
    from crampqa.encoder_cache import ENCODER_DIR, cached_export, reusable_export, store_export

    target = tmp / ENCODER_DIR
    real = isinstance(embedder, SentenceTransformerEmbedder)  # its export is ONNX
    identity = embedder.identity(previous.manifest.model if previous is not None else None)
    source = reusable_export(index_root, identity, previous.folder if previous else None)
    if source is not None:
        # an earlier version's files are never written in place: linked, not copied
        # (the export is about 90 MB; an incremental build should not write it again)
        shutil.copytree(source, target,
                        copy_function=lambda a, b: _link_or_copy(Path(a), Path(b)))
    elif real and (cached := cached_export(identity)) is not None:
        shutil.copytree(cached, target)  # copied: the cache is outside the index's care
    else:
        if progress:
            progress("exporting query encoder", 0, 1)
        export(target)
        if real:
            store_export(target, identity)
        if progress:
            progress("exporting query encoder", 1, 1)
    return OnnxBuildEmbedder(embedder, target) if real else embedder


def _previous(
    root: Path, inputs: IndexInputs, rebuild: bool
) -> tuple[IndexData | None, Freshness]:
    """The current version (None when it cannot be reused) and how fresh it is."""
    if rebuild:
        return None, Freshness(Action.FULL, "--rebuild was asked for")
    try:
        folder = current_version(root) or latest_version(root)  # a lost pointer: its version
        if folder is None:
            return None, Freshness(Action.FULL)  # a first build: nothing to explain
        data = load_version(folder, upgrading=True)
        if data.manifest.format_version < FORMAT_VERSION:  # sealed only once all is hashed
            verify_files(folder, data.manifest, full=True)
    except IndexError_ as exc:
        return None, Freshness(Action.FULL, f"the previous index is unusable ({exc.message})")
    verdict = freshness(data.manifest, inputs)
    return (None if verdict.action is Action.FULL else data), verdict


def _recorded(index_root: Path) -> Manifest | None:
    """The manifest of the current version of ``index_root`` (None: none, or unreadable)."""
    try:
        folder = current_version(index_root) if index_root.is_dir() else None
        return Manifest.load(folder) if folder is not None else None
    except IndexError_:
        return None


def recorded_corpus(index_root: Path) -> Path | None:
    """The corpus folder the current version of ``index_root`` was built from (None: no
    index, an unreadable one, or one that records no folder)."""
    manifest = _recorded(index_root)
    return Path(manifest.corpus.dir) if manifest is not None and manifest.corpus.dir else None


def _same_folder(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def check_corpus(corpus_dir: Path, index_root: Path, doc_ids: Collection[str],
                 replace_corpus: bool = False) -> None:
    """Refuse a build that would switch ``index_root`` to another corpus.

    The bundled index holds the bundled articles only. Any other index keeps the folder
    it was built from unless ``replace_corpus`` says otherwise; another folder that holds
    every document of the index (``doc_ids`` are the new folder's), such as a moved or
    copied one, is the same corpus.
    """
    if _same_folder(index_root, bundled_index_dir()):
        if not _same_folder(corpus_dir, bundled_corpus_dir()):
            raise CorpusMismatchError(
                f"{index_root} is the index of the bundled articles ({bundled_corpus_dir()}); "
                f"index {corpus_dir} into its own folder: crampqa index --corpus "
                f"{corpus_dir} --index DIR.")
        return
    manifest = _recorded(index_root)
    if manifest is None or not manifest.corpus.dir or replace_corpus:
        return
    recorded = Path(manifest.corpus.dir)
    if _same_folder(recorded, corpus_dir) or set(manifest.corpus.documents) <= set(doc_ids):
        return
    raise CorpusMismatchError(
        f"The index in {index_root} was built from {recorded}, not {corpus_dir}; to rebuild "
        f"it from {corpus_dir}, run crampqa index --corpus {corpus_dir} --index {index_root} "
        "--replace-corpus (or give another --index).")


def build_index(
    corpus_dir: Path,
    index_root: Path,
    *,
    settings: IndexSettings | None = None,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    rebuild: bool = False,
    wait_for_lock: bool = False,
    engine: EngineSettings | None = None,
    replace_corpus: bool = False,
) -> BuildSummary:
    """Build (or incrementally update) the index for ``corpus_dir`` in ``index_root``;
    ``engine`` says where chunking and embedding run (default: here). An index built from
    another folder is rebuilt from ``corpus_dir`` only with ``replace_corpus``."""
    started = time.perf_counter()
    settings = settings or IndexSettings()
    check_engine(engine)
    corpus = CorpusState(corpus_dir)
    report = corpus.report()
    if not report.documents:
        raise no_documents_error(corpus_dir, report.skipped)
    doc_ids = {doc.doc_id for doc in report.documents}
    check_corpus(corpus_dir, index_root, doc_ids, replace_corpus)  # before the model loads
    inputs = IndexInputs(settings, embedder or get_embedder(settings.model), corpus)
    with build_lock(index_root, wait=wait_for_lock):
        check_corpus(corpus_dir, index_root, doc_ids, replace_corpus)  # after another build
        previous, verdict = _previous(index_root, inputs, rebuild)
        summary = BuildSummary(
            index_root, skipped=report.skipped,
            full_rebuild_reason=verdict.reason if verdict.action is Action.FULL else None)
        if previous is not None and verdict.action is Action.UP_TO_DATE:
            # nothing would differ but the timestamp: keep the current version (no new
            # folder, so open services and their answer caches stay valid)
            prune_versions(index_root, keep=previous.folder.name)  # e.g. a killed build's
            if previous.manifest.format_version < FORMAT_VERSION:
                upgrade_manifest(previous.folder, previous.manifest)
                summary.upgraded_manifest = True
            if current_version(index_root) != previous.folder:  # the pointer was lost
                point_current(index_root, previous.folder)
            summary.folder = previous.folder
            summary.up_to_date = True
            summary.documents = summary.unchanged = len(report.documents)
            summary.passages = len(previous.passages)
            summary.dense = dict(previous.manifest.dense)
            summary.document_level = bool(previous.manifest.document_level)
            summary.seconds = time.perf_counter() - started
            return summary
        tmp = new_version_folder(index_root)
        try:
            with open_runner(engine, settings.model) as runner:
                plan = plan_build(report.documents, settings, previous, runner)
                announce(progress, plan.added + plan.changed,
                         "here" if isinstance(runner, LocalRunner) else "on the Ray cluster")
                embedder = prepare_encoder(tmp, inputs.embedder, index_root, previous,
                                           progress)
                vectors = embed(plan, embedder, previous, progress, runner)
                document_vectors = embed_documents(plan.documents, embedder, runner,
                                                   plan.passages.docs, vectors[0],
                                                   previous, progress)
            summary.dense = write_version(tmp, plan, vectors, settings, progress)
            write_document_level(tmp, plan.documents, document_vectors)
            manifest = Manifest(
                model=inputs.identity(previous.manifest if previous is not None else None),
                dim=inputs.embedder.dim, settings=settings, corpus=CorpusRecord.of(corpus),
                passages=len(plan.passages), documents=len(plan.documents),
                dense=summary.dense, scorer=inputs.scorer, document_level=record("index"),
                search=dict(previous.manifest.search) if previous is not None else {})
            if progress:
                progress("committing", 0, 1)
            summary.folder = commit_version(index_root, tmp, manifest)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if is_disk_full(exc) and not isinstance(exc, DiskFullError):
                # whatever wrote it (numpy, bm25s, FAISS, copytree, the ONNX export)
                raise DiskFullError(index_root) from None
            raise
    summary.documents, summary.passages = len(plan.documents), len(plan.passages)
    summary.added, summary.changed = plan.added, plan.changed
    summary.unchanged, summary.removed = plan.unchanged, plan.removed
    summary.embedded_passages = len(plan.passage_jobs)
    summary.seconds = time.perf_counter() - started
    return summary


@dataclass
class UpgradeSummary:
    """What :func:`add_document_level` did."""

    folder: Path
    documents: int
    added: bool  # False: the version had them already, nothing was written
    seconds: float = 0.0


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` (versions are never written in place), else copy it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def add_document_level(
    index_root: Path,
    *,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    wait_for_lock: bool = False,
    engine: EngineSettings | None = None,
) -> UpgradeSummary:
    """Give the current version of ``index_root`` its document vectors and document BM25.

    Only the documents (and their titles) are embedded, here or on the Ray cluster of
    ``engine``; every other file of the version is carried over unchanged (hard links)
    into a new version folder, which is committed like a build (manifest with checksums,
    atomic swap of ``CURRENT``). Readers see the old version or the new one, never a
    half-written one.
    """
    started = time.perf_counter()
    check_engine(engine)
    with build_lock(index_root, wait=wait_for_lock):
        folder = current_version(index_root)
        if folder is None:
            raise IndexError_(f"No index in {index_root}; build it with `crampqa index`.")
        previous = load_version(folder)
        if previous.manifest.document_level:
            return UpgradeSummary(folder, len(previous.documents), False,
                                  time.perf_counter() - started)
        model = embedder or get_embedder(previous.manifest.model.name)
        if not model.identity(previous.manifest.model).same_model(previous.manifest.model):
            raise IndexError_(f"The index in {index_root} was built with other model weights; "
                              "rebuild it with `crampqa index --rebuild`.")
        tmp = new_version_folder(index_root)
        try:
            for rel in previous.manifest.files:
                _link_or_copy(folder / rel, tmp / rel)
            from crampqa.embedding import OnnxBuildEmbedder, SentenceTransformerEmbedder
            from crampqa.encoder_cache import ENCODER_DIR

            export = folder / ENCODER_DIR
            if isinstance(model, SentenceTransformerEmbedder) and \
                    (export / "model.onnx").is_file():
                model = OnnxBuildEmbedder(model, export)  # the version's own export
            announce(progress, len(previous.documents),
                     "here" if engine is None or engine.engine is BuildEngine.LOCAL
                     else "on the Ray cluster", what="titles", share=0.02)
            with open_runner(engine, previous.manifest.model.name) as runner:
                vectors = embed_documents(previous.documents, model, runner,
                                          previous.passages.docs, previous.embeddings,
                                          None, progress)
            write_document_level(tmp, previous.documents, vectors)
            manifest = replace(previous.manifest, files={}, document_level=record("upgrade"))
            if progress:
                progress("committing", 0, 1)
            final = commit_version(index_root, tmp, manifest)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if is_disk_full(exc) and not isinstance(exc, DiskFullError):
                raise DiskFullError(index_root) from None
            raise
    return UpgradeSummary(final, len(previous.documents), True, time.perf_counter() - started)
