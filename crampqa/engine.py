"""The crampqa engine: the one core that the CLI, eval and the web service call."""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from crampqa.abstention import abstain_reason
from crampqa.config import (
    DEFAULT_K,
    MAX_QUESTION_CHARS,
    Backend,
    BuildEngine,
    EngineSettings,
    IndexSettings,
    Progress,
    RetrievalSettings,
    SearchSettings,
    bundled_index_dir,
    check_k,
    default_corpus_dir,
    default_index_dir,
)
from crampqa.corpus import CorpusState
from crampqa.dense import DenseIndex
from crampqa.documents import (
    DocumentEvidence,
    DocumentLevel,
    DocumentWeights,
    add_hint,
    combine,
    evidence,
    passage_only,
)
from crampqa.embedding import Embedder, Encoder, get_embedder, load_query_encoder
from crampqa.errors import (
    REBUILD_HINT,
    CorpusError,
    DiskFullError,
    IndexError_,
    IndexLockedError,
    IndexNotWritableError,
    InputError,
)
from crampqa.indexing import (
    BuildSummary,
    UpgradeSummary,
    add_document_level,
    build_index,
    recorded_corpus,
)
from crampqa.lexical import LexicalIndex
from crampqa.manifest import IndexInputs, Manifest, freshness
from crampqa.presentation import strength
from crampqa.progress import default_progress
from crampqa.results import (
    DISCLAIMER,
    NOT_ENGLISH_NOTE,
    Answer,
    Highlight,
    RankedPassage,
    looks_not_english,
)
from crampqa.retrieval import Candidate, Retriever, with_overrides
from crampqa.store import (
    CURRENT_FILE,
    IndexData,
    build_lock,
    current_version,
    latest_version,
    load_version,
    record_search,
)


def clean_question(question: object) -> str:
    """Validate a question: text, not blank, at most ``MAX_QUESTION_CHARS`` characters.

    Control characters (NUL included) and lone surrogates become spaces and runs of
    whitespace collapse to one space; nothing else is changed. Text over 50 times the
    limit is refused before it is even cleaned, so a huge input costs no time.
    """
    if not isinstance(question, str):
        raise InputError("The question must be text.")
    if len(question) > 50 * MAX_QUESTION_CHARS:
        raise InputError(f"The question is {len(question)} characters long; the limit is "
                         f"{MAX_QUESTION_CHARS}.")
    cleaned = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in question
    )
    cleaned = " ".join(cleaned.split())
    if not cleaned:
        raise InputError("The question is empty; ask something like "
                         "'why do my calves cramp at night'.")
    if len(cleaned) > MAX_QUESTION_CHARS:
        raise InputError(f"The question is {len(cleaned)} characters long; the limit is "
                         f"{MAX_QUESTION_CHARS}.")
    return cleaned


def corpus_of(index: Path) -> Path | None:
    """The corpus an index uses when no corpus is given: the bundled articles for the
    bundled index, else the folder the index was built from (None: it records none)."""
    if index.resolve() == bundled_index_dir().resolve():
        return default_corpus_dir()
    return recorded_corpus(index)


def _engine_settings(engine: str | EngineSettings, address: str | None,
                     workers: int | None) -> EngineSettings:
    """The build engine from the API's ``engine``/``address``/``workers`` arguments."""
    if isinstance(engine, EngineSettings):
        return engine
    return EngineSettings(BuildEngine.parse(engine), address=address, workers=workers)


class CrampQA:
    """Question answering over one corpus and its index, by verbatim passages only.

    Open with :meth:`open` (builds or refreshes the index when needed) and call
    :meth:`ask`. Every passage's ``text`` equals ``document_text[start:end]``.
    """

    def __init__(
        self,
        data: IndexData,
        retriever: Retriever,
        corpus_dir: Path | None,
        index_dir: Path,
        build_summary: BuildSummary | None = None,
        notice: str | None = None,
        search: SearchSettings | None = None,
    ) -> None:
        self.data = data
        #: where candidates are searched when asked to override the index's record
        #: (None: as the manifest records); later versions are opened the same way
        self.search = search
        #: a one-line note for the user (e.g. answering from the previous version)
        self.notice = notice
        self.retriever = retriever
        self.corpus_dir = corpus_dir
        self.index_dir = index_dir
        self.build_summary = build_summary
        self._document_level: DocumentLevel | bool | None = False  # False: not loaded yet

    # ---- opening and building -------------------------------------------------------
    @classmethod
    def build(
        cls,
        corpus_dir: Path | str | None = None,
        index_dir: Path | str | None = None,
        *,
        settings: IndexSettings | None = None,
        rebuild: bool = False,
        progress: Progress | Literal[False] | None = None,
        embedder: Embedder | None = None,
        wait_for_lock: bool = False,
        engine: str | EngineSettings = "local",
        address: str | None = None,
        workers: int | None = None,
        search: SearchSettings | None = None,
        replace_corpus: bool = False,
    ) -> BuildSummary:
        """Build or update the index of ``corpus_dir`` in ``index_dir``.

        Without ``corpus_dir`` an existing index is updated from the folder it was built
        from (a new one from the default corpus). An index keeps its corpus: building it
        from another folder raises :class:`CorpusMismatchError` unless ``replace_corpus``
        (the bundled index holds the bundled articles only).

        ``engine="ray"`` chunks and embeds on a Ray cluster (``address`` ``HOST:PORT`` of a
        running head, or None for a private local one; ``workers`` embedding workers):
        the same index version as a local build (``pip install 'crampqa[ray]'``).
        ``search`` (default: as the index records) chooses where candidates are searched;
        with Milvus, the collection is then brought in line with the new version by
        upserts and deletes, and the choice is recorded in the manifest. On an index that
        is already up to date this is the migration: nothing is embedded again.
        """
        index = Path(index_dir) if index_dir else default_index_dir()
        if corpus_dir:
            corpus = Path(corpus_dir)
        else:
            corpus = corpus_of(index) or default_corpus_dir()
            if not corpus.is_dir():
                raise CorpusError(f"The index in {index} was built from {corpus}, which is "
                                  "gone; to rebuild it from another folder, give --corpus "
                                  "DIR --replace-corpus.")
        where = _engine_settings(engine, address, workers)
        if search is not None and search.backend is Backend.MILVUS:
            from crampqa.milvus import connect

            connect(search).close()  # not installed or not reachable: fail before building
        progress = default_progress(progress)
        summary = build_index(corpus, index, settings=settings, embedder=embedder,
                              progress=progress, rebuild=rebuild, wait_for_lock=wait_for_lock,
                              engine=where, replace_corpus=replace_corpus)
        summary.search_note = sync_search(index, search, progress, wait_for_lock)
        return summary

    @classmethod
    def add_document_vectors(
        cls,
        index_dir: Path | str | None = None,
        *,
        progress: Progress | Literal[False] | None = None,
        embedder: Embedder | None = None,
        wait_for_lock: bool = False,
        engine: str | EngineSettings = "local",
        address: str | None = None,
        workers: int | None = None,
    ) -> UpgradeSummary:
        """Add document vectors and document BM25 to the current version of an index
        built without them, as a new version (atomic); passages are not re-embedded.
        ``engine="ray"`` embeds the documents on a Ray cluster, as in :meth:`build`."""
        index = Path(index_dir) if index_dir else default_index_dir()
        return add_document_level(index, embedder=embedder, progress=default_progress(progress),
                                  wait_for_lock=wait_for_lock,
                                  engine=_engine_settings(engine, address, workers))

    @classmethod
    def open(
        cls,
        corpus_dir: Path | str | None = None,
        index_dir: Path | str | None = None,
        *,
        auto_build: bool = True,
        settings: IndexSettings | None = None,
        progress: Progress | Literal[False] | None = None,
        embedder: Embedder | None = None,
        query_encoder: Encoder | None = None,
        search: SearchSettings | None = None,
    ) -> CrampQA:
        """Open an index, building it first when it is missing or stale.

        Without ``corpus_dir`` the index's own corpus is used (:func:`corpus_of`; the
        staleness check is skipped if that folder is gone), and a missing index is built
        from the default corpus only when ``index_dir`` is not given either. An index is
        never rebuilt from another folder than its own (:class:`CorpusMismatchError`).
        ``search`` overrides where candidates are searched (default: as recorded).
        """
        index = Path(index_dir) if index_dir else default_index_dir()
        corpus: Path | None = Path(corpus_dir) if corpus_dir else corpus_of(index)
        if corpus is None and index_dir is None:
            corpus = default_corpus_dir()
        folder = current_version(index) if index.exists() else None
        summary: BuildSummary | None = None
        reason: str | None = None
        notice: str | None = None
        if folder is None and index.exists():
            folder = latest_version(index)  # the pointer alone was lost: nothing to rebuild
            if folder is not None:
                notice = (f"{index / CURRENT_FILE} is missing; answering from the newest "
                          f"complete version, {folder.name} (`crampqa index` restores the "
                          "pointer).")
        if folder is None:
            reason = "no index yet"
        else:
            data = load_version(folder)
            if corpus is not None and not corpus.is_dir() and not corpus_dir:
                corpus = None  # the folder it was built from is gone: use it as it is
            wanted = settings or IndexSettings()
            verdict = freshness(data.manifest, IndexInputs(
                wanted, embedder or get_embedder(wanted.model),
                CorpusState(corpus) if corpus is not None else None))
            reason = verdict.reason if verdict.needs_build else None
        if reason is not None:
            if corpus is None:
                raise IndexError_(f"No index in {index} and no corpus to build it from; "
                                  "use --corpus DIR.")
            if not auto_build:
                raise IndexError_(f"The index in {index} needs building ({reason}); "
                                  "run `crampqa index`.")
            try:
                shown = default_progress(progress)
                summary = build_index(corpus, index, settings=settings, embedder=embedder,
                                      progress=shown)
                summary.search_note = sync_search(index, None, shown)
            except IndexLockedError:
                if folder is None:
                    raise
                # another process is rebuilding: answer from the last complete version
                notice = (f"The index is being rebuilt by another process ({reason}); "
                          "answering from the previous complete version.")
            except DiskFullError as exc:
                if folder is None:
                    raise
                notice = (f"No space left in {exc.root} to update the index ({reason}): "
                          "free some space; answering from the previous complete version.")
            except IndexNotWritableError as exc:
                if folder is None:
                    raise
                # e.g. a read-only index: answer as for a full disk or a locked index
                notice = (f"Cannot update the index in {index} ({reason}): "
                          f"{exc.detail or 'not writable'}; answering from the previous "
                          "complete version.")
            else:
                notice = None  # the build wrote CURRENT
                folder = current_version(index)
                if folder is None:  # pragma: no cover - build_index always commits
                    raise IndexError_(f"Building the index in {index} failed; {REBUILD_HINT}.")
                data = load_version(folder)
        return cls(data, _retriever(data, query_encoder or embedder, search), corpus, index,
                   summary, notice, search)

    @classmethod
    def open_version(
        cls,
        folder: Path,
        *,
        corpus_dir: Path | None = None,
        verify_full: bool = False,
        query_encoder: Encoder | None = None,
        search: SearchSettings | None = None,
    ) -> CrampQA:
        """Open one complete version folder as it is: no freshness check, no build (the
        web service following ``CURRENT`` uses this). ``verify_full`` hashes every file."""
        data = load_version(folder, verify_full=verify_full)
        return cls(data, _retriever(data, query_encoder, search), corpus_dir, folder.parent,
                   search=search)

    # ---- asking -----------------------------------------------------------------------
    @property
    def retrieval_settings(self) -> RetrievalSettings:
        """Retrieval settings stored with the index."""
        return self.data.settings.retrieval

    def load_scorer(self) -> None:
        """Load the answer scorer now (its files checked) when the index's settings use
        it, instead of on the first question: a service started with a damaged scorer
        then fails at start with :class:`ModelError`, not on every ask."""
        if self.retrieval_settings.scorer:
            _ = self.retriever.scorer

    def ask(
        self,
        question: str,
        k: int = DEFAULT_K,
        *,
        fusion: str | None = None,
        rescore: bool | None = None,
        abstain_threshold: float | None = None,
        scorer: bool | None = None,
    ) -> Answer:
        """The top ``k`` passages for ``question``, verbatim, or an abstention.

        ``scorer=False`` is the fast mode (fusion only); ``abstain_threshold`` overrides
        the threshold of the mode in use (the scorer's probability, or fusion's score).
        """
        text = clean_question(question)
        k = check_k(k)
        settings = self._settings(fusion=fusion, rescore=rescore, scorer=scorer,
                                  abstain_threshold=abstain_threshold)
        ranking = self.retriever.rank(text, k, settings)
        passages = [
            self._present(rank, cand, ranking.abstained)
            for rank, cand in enumerate(ranking.candidates, start=1)
        ]
        reason = abstain_reason(text, [p.text for p in passages[:3]],
                                self.retriever.lexical.unknown_words,
                                english=not looks_not_english(text)) \
            if ranking.abstained else None
        answer = Answer(
            question=text,
            abstained=ranking.abstained,
            passages=passages,
            confidence=ranking.confidence,
            message=reason.message if reason else None,
            reason=reason.code if reason else None,
            ranked_by=self.retriever.scorer.name if settings.scorer else "fusion",
            note=NOT_ENGLISH_NOTE if looks_not_english(text) else None,
            disclaimer=self.disclaimer,
        )
        return replace(answer, passages=[replace(p, strength=strength(p, answer))
                                         for p in passages])

    def abstain_threshold(self, *, fusion: str | None = None, rescore: bool | None = None,
                          scorer: bool | None = None) -> float:
        """The confidence below which :meth:`ask` abstains with these overrides: the
        scorer's threshold when the answer scorer is used, fusion's otherwise."""
        settings = self._settings(fusion=fusion, rescore=rescore, scorer=scorer)
        return settings.scorer_threshold if settings.scorer else settings.abstain_threshold

    def _settings(self, *, abstain_threshold: float | None = None,
                  **overrides: object) -> RetrievalSettings:
        """The index's retrieval settings with per-question overrides applied."""
        settings = with_overrides(self.retrieval_settings, **overrides)
        if abstain_threshold is None:
            return settings
        if settings.scorer:
            return with_overrides(settings, scorer_threshold=abstain_threshold)
        return with_overrides(settings, abstain_threshold=abstain_threshold)

    @property
    def document_level(self) -> DocumentLevel | None:
        """The index's document vectors and document BM25 (None when it has none)."""
        if self._document_level is False:
            self._document_level = DocumentLevel.load(self.data)
        return self._document_level  # type: ignore[return-value]

    def document_weights(self, settings: RetrievalSettings | None = None) -> DocumentWeights:
        """How :meth:`rank_documents` adds document evidence (all zero: best passage)."""
        s = settings or self.retrieval_settings
        return DocumentWeights(vector=s.document_vector_weight, title=s.document_title_weight,
                               lexical=s.document_lexical_weight,
                               passages=s.document_passages_weight,
                               temperature=s.document_temperature,
                               scorer=s.document_scorer_weight)

    def passage_candidates(
        self,
        question: str,
        *,
        fusion: str | None = None,
        rescore: bool | None = None,
        scorer: bool | None = None,
        passages: int = 100,
        scored: int = 30,
    ) -> tuple[list[int], list[float], list[float | None]]:
        """The ``passages`` best passages for document ranking, undiversified, the top
        ``scored`` of them read by the answer scorer (unless ``scorer=False``): their
        document numbers, scores and scorer probabilities, best first."""
        text = clean_question(question)
        settings = self._settings(
            fusion=fusion, rescore=rescore, scorer=scorer,
            dense_candidates=max(passages, self.retrieval_settings.dense_candidates),
            lexical_candidates=max(passages, self.retrieval_settings.lexical_candidates),
        )
        ranking = self.retriever.rank(text, passages, settings, diversify=False,
                                      scorer_depth=scored)
        table = self.data.passages
        return ([table.doc_number(c.row) for c in ranking.candidates],
                [float(c.score) for c in ranking.candidates],
                [c.probability for c in ranking.candidates])

    def document_evidence(self, question: str, passage_docs: list[int],
                          extra: int) -> DocumentEvidence | None:
        """The document evidence of ``passage_docs`` and of the ``extra`` best documents
        by their own vector and BM25 (None when the index has no document vectors)."""
        level = self.document_level
        if level is None:
            return None
        text = clean_question(question)
        return evidence(level, text, self.retriever.embed_question(text), passage_docs, extra)

    def rank_documents(
        self,
        question: str,
        k: int = 10,
        *,
        fusion: str | None = None,
        rescore: bool | None = None,
        scorer: bool | None = None,
        passages: int = 100,
        scored: int = 30,
        naive: bool = False,
        weights: DocumentWeights | None = None,
    ) -> list[tuple[str, float]]:
        """Documents ranked for ``question``: ``[(doc_id, score)]``, best first.

        Used for document-level evaluation (BEIR). A document scores its best passage
        among ``passages`` candidates (the top ``scored`` read by the answer scorer unless
        ``scorer=False``) plus, when the index has document vectors, the document
        evidence of :meth:`document_weights` (``weights`` overrides it). ``naive`` is the
        reference ranking of whole documents instead (:meth:`DocumentLevel.naive`).
        """
        documents = self.data.documents
        if naive:
            return [(documents[d].doc_id, score) for d, score in self.rank_naive(question, k)]
        docs, scores, probs = self.passage_candidates(
            question, fusion=fusion, rescore=rescore, scorer=scorer, passages=passages,
            scored=scored)
        weights = weights or self.document_weights()
        if weights.scorer is not None:  # the scorer's weight for documents, not for `ask`
            extra = weights.scorer - self._settings(scorer=scorer).scorer_weight
            scores = [s + extra * (p or 0.0) for s, p in zip(scores, probs, strict=True)]
        found = self.document_evidence(question, docs, weights.extra) \
            if weights.active else None
        if found is None:  # no document vectors (or no weight on them): passages alone
            found = passage_only(docs)
        return [(documents[d].doc_id, s) for d, s in combine(docs, scores, found, weights)[:k]]

    def rank_naive(self, question: str, k: int = 10) -> list[tuple[int, float]]:
        """The naive reference ranking of whole documents: ``[(document number, score)]``.

        Needs the index's document vectors; without them, an :class:`IndexError_` says
        how to add them."""
        level = self.document_level
        if level is None:
            raise IndexError_(f"The index in {self.index_dir} has no document vectors; "
                              f"{add_hint(self.index_dir)}.")
        text = clean_question(question)
        return level.naive(text, self.retriever.embed_question(text), k)

    def _present(self, rank: int, cand: Candidate, weak: bool) -> RankedPassage:
        table = self.data.passages
        doc = table.doc(cand.row)
        start, end = table.span(cand.row)
        heading, context = table.shown_heading(cand.row), table.context(cand.row)
        return RankedPassage(
            rank=rank,
            doc_id=doc.doc_id,
            source_id=table.source_id(cand.row),
            title=doc.title,
            start=start,
            end=end,
            score=round(float(cand.score), 6),
            probability=round(cand.probability, 6) if cand.probability is not None else None,
            text=table.text(cand.row),
            kind=table.kind(cand.row),
            highlights=tuple(Highlight(s, e) for s, e in self.retriever.highlights(cand)),
            heading=heading.text if heading else None,
            heading_start=heading.start if heading else None,
            heading_end=heading.end if heading else None,
            context=context.text if context else None,
            context_start=context.start if context else None,
            context_end=context.end if context else None,
            weak=weak,
            url=doc.url,
        )

    # ---- about the sources ------------------------------------------------------------
    @property
    def disclaimer(self) -> str:
        """The note under every answer: the corpus's own (``sources.json``), else the
        not-medical-advice note."""
        return self.data.manifest.corpus.note or DISCLAIMER

    def sources(self) -> list[dict[str, Any]]:
        """The indexed documents: ID, title, path, URL and size."""
        return [
            {"doc_id": d.doc_id, "title": d.title, "path": d.path, "url": d.url,
             "chars": len(d.text)}
            for d in self.data.documents
        ]

    def document_text(self, doc_id: str) -> str:
        """The decoded text of a document, as offsets refer to it."""
        try:
            return self.data.documents[self.data.doc_index[doc_id]].text
        except KeyError:
            raise InputError(f"Unknown document ID '{doc_id}'.") from None

    @property
    def manifest(self) -> dict[str, Any]:
        """The opened index's manifest, as the JSON object of its ``manifest.json``."""
        return self.data.manifest.to_json()


def sync_search(index: Path, search: SearchSettings | None, progress: Progress | None = None,
                wait_for_lock: bool = False) -> str | None:
    """Bring the search backend of the index's current version up to date and record it
    in the manifest (``search`` None: the backend the version records). Returns a line
    for the user when a backend other than the index folder was updated."""
    folder = current_version(index)
    if folder is None:  # pragma: no cover - called after a build committed
        return None
    recorded = Manifest.load(folder).search_settings
    if recorded.backend is Backend.EMBEDDED and search in (None, recorded):
        return None  # the default: nothing to update or record
    with build_lock(index, wait=wait_for_lock):
        folder = current_version(index)
        if folder is None:  # pragma: no cover - called after a build committed
            return None
        data = load_version(folder)
        recorded = data.manifest.search_settings
        target = search or recorded
        note = None
        if target.backend is Backend.MILVUS:
            from crampqa.milvus import sync

            done = sync(data, target, progress)
            note = (f"Milvus collection {target.collection} at {target.uri}: "
                    f"{done.upserted} upserted, {done.deleted} deleted, {done.unchanged} "
                    f"unchanged in {done.seconds:.1f}s")
        if target != recorded:
            record_search(folder, target.to_dict() if target.backend is Backend.MILVUS
                          else {})
        return note


def _retriever(data: IndexData, encoder: Encoder | None,
               search: SearchSettings | None = None) -> Retriever:
    model = data.manifest.model.name
    search = search or data.manifest.search_settings
    source = None
    if search.backend is Backend.MILVUS:
        from crampqa.milvus import MilvusSource

        source = MilvusSource(data, search)  # fails first when Milvus is unusable
    if encoder is None:
        encoder = load_query_encoder(data.folder / "encoder", model)
    try:
        lexical = LexicalIndex.load(data.folder / "bm25")
    except (OSError, ValueError, KeyError) as exc:
        raise IndexError_(f"The BM25 index in {data.folder} is damaged ({exc}); "
                          f"{REBUILD_HINT}.") from None
    if source is not None:
        if lexical.size != len(data.passages):
            raise IndexError_(f"The index in {data.folder} is inconsistent; {REBUILD_HINT}.")
        return Retriever(data, encoder, lexical, None, source=source)
    dense = DenseIndex.load(data.folder / "dense.faiss")
    if dense.size != len(data.passages) or lexical.size != len(data.passages):
        raise IndexError_(f"The index in {data.folder} is inconsistent; {REBUILD_HINT}.")
    return Retriever(data, encoder, lexical, dense)
