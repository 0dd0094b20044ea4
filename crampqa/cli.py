"""The `crampqa` command: parses, calls :class:`crampqa.CrampQA`, prints.

Errors become one line and an exit code in exactly one place, :func:`main`.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import click
import typer
from rich.console import Console
from typer.core import TyperCommand

from crampqa.config import DEFAULT_K, Progress, SearchSettings, env_flag
from crampqa.errors import CrampQAError, InputError, unexpected
from crampqa.progress import PROGRESS_INTERVAL_S, ProgressLines  # noqa: F401 (re-exported)

if TYPE_CHECKING:  # imported where used, so that `crampqa --help` stays quick
    from crampqa.engine import CrampQA
    from crampqa.indexing import BuildSummary

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Verbatim, source-cited answers about leg cramps and the deficiencies behind them. "
    "Not medical advice.\n\nAsk with: crampqa \"why do my calves cramp at night\"",
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console(soft_wrap=False)
err = Console(stderr=True)


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"crampqa {version('crampqa')}")
        except PackageNotFoundError:  # running from a source tree that is not installed
            print("crampqa (not installed)")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[bool, typer.Option(
        "--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Verbatim, source-cited answers about leg cramps and the deficiencies behind them.
    Not medical advice.

    Ask with: crampqa "why do my calves cramp at night"
    """


def folder_option(flag: str, help: str, envvar: str | None = None) -> Any:
    """The ``--corpus`` / ``--index`` option, with its own help (and environment variable)."""
    return typer.Option(flag, envvar=envvar, help=help)


CorpusOpt = Annotated[
    Path | None,
    folder_option("--corpus", "Corpus folder (default: the folder the index was built "
                  "from; corpus/ for the default index, which holds only that one).",
                  "CRAMPQA_CORPUS"),
]
IndexOpt = Annotated[
    Path | None,
    folder_option("--index", "Index folder (default: indexes/default, the index of "
                  "corpus/).", "CRAMPQA_INDEX"),
]

BackendOpt = Annotated[
    str | None,
    typer.Option("--backend", help="Where candidates are searched: embedded (FAISS and "
                 "BM25 in the index folder) or milvus (needs --uri and crampqa[milvus]). "
                 "Default: what the index records (embedded)."),
]
UriOpt = Annotated[
    str | None,
    typer.Option("--uri", help="Milvus server URI for --backend milvus, e.g. "
                 "http://127.0.0.1:19530."),
]
CollectionOpt = Annotated[
    str | None,
    typer.Option("--collection", help="Milvus collection (default: crampqa_passages)."),
]


def search_settings(backend: str | None, uri: str | None,
                    collection: str | None) -> SearchSettings | None:
    """The search backend the options ask for; None when none is given (the index's)."""
    from crampqa.config import DEFAULT_COLLECTION, Backend

    if backend is None and uri is None and collection is None:
        return None
    chosen = Backend.parse(backend) if backend is not None else \
        Backend.MILVUS if uri else Backend.EMBEDDED
    if chosen is Backend.MILVUS:
        from crampqa.milvus import _pymilvus

        _pymilvus()  # without the extra: the one-line install hint, before any work
    return SearchSettings(chosen, uri or "", collection or DEFAULT_COLLECTION)


@contextmanager
def build_progress(enabled: bool) -> Iterator[Progress | None]:
    """Build progress on stderr: a rich bar (rate and ETA) at a terminal, otherwise a plain
    line every few seconds."""
    if not enabled:
        yield None
        return
    if not sys.stderr.isatty():
        yield ProgressLines()
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            return Text(f"{task.speed:,.0f}/s" if task.speed else "", style="cyan")

    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   RateColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                   console=err, transient=True)
    tasks: dict[str, Any] = {}

    class BarProgress:
        def __call__(self, stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=max(total, 1))
            bar.update(tasks[stage], completed=done, total=max(total, 1))

        def notice(self, text: str) -> None:
            bar.console.print(text, markup=False, highlight=False)

    with bar:
        yield BarProgress()


def _stderr(message: str) -> None:
    """One unwrapped line on standard error, control characters made visible."""
    from crampqa.terminal import visible

    print(visible(message, newlines=False), file=sys.stderr, flush=True)


def _count(n: int, noun: str) -> str:
    """``1 document``, ``2 documents``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _summary_line(s: BuildSummary) -> str:
    return (
        f"Indexed {_count(s.documents, 'document')} into {_count(s.passages, 'passage')} "
        f"({s.added} added, {s.changed} changed, {s.unchanged} unchanged, "
        f"{s.removed} removed; {_count(len(s.skipped), 'file')} skipped) "
        f"in {s.seconds:.1f}s -> {s.folder}"
        + (" (up to date: nothing written)" if s.up_to_date and not s.upgraded_manifest
           else "")
        + (" (up to date; its manifest was upgraded to carry its own checksum, nothing "
           "embedded again)" if s.upgraded_manifest else "")
    )


def _open(corpus: Path | None, index: Path | None, quiet: bool = False,
          search: SearchSettings | None = None) -> CrampQA:
    """Open the engine (building with a progress bar when needed) and report, on stderr,
    what a build did and any notice, such as answering from the previous version."""
    from crampqa.engine import CrampQA

    with build_progress(True) as progress:  # on stderr: also under --json
        qa = CrampQA.open(corpus, index, progress=progress, search=search)
    _report_opened(qa, quiet)
    return qa


def _report_opened(qa: CrampQA, quiet: bool = False) -> None:
    if qa.build_summary is not None:
        _report_build(qa.build_summary, quiet=quiet)
    if qa.notice:
        _stderr(qa.notice)


def _report_build(summary: BuildSummary, quiet: bool = False) -> None:
    for path, why in summary.skipped:
        _stderr(f"skipped {path}: {why}")
    reason = summary.full_rebuild_reason
    if reason:
        _stderr(f"Full rebuild: {reason}.")
    if not quiet:
        _stderr(_summary_line(summary))
        if summary.search_note:
            _stderr(summary.search_note)


class WordsCommand(TyperCommand):
    """`ask`: its QUESTION is shown as words, not as a typed list."""

    def get_help(self, ctx: Any) -> str:
        """The help, without the braces and list type typer prints around QUESTION."""
        typed = "QUESTION <list[str]>"
        return (super().get_help(ctx).replace("{QUESTION}...", "QUESTION...")
                .replace(typed, "QUESTION...".ljust(len(typed))))


@app.command(cls=WordsCommand)
def ask(
    question: Annotated[list[str], typer.Argument(
        metavar="QUESTION",
        help="Your question; quotes are optional (the words are joined with spaces).")],
    k: Annotated[int, typer.Option("-k", "--top", help="How many passages to show.")] = DEFAULT_K,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    scores: Annotated[bool, typer.Option(
        "--scores", help="Show each passage's raw score beside its strength.")] = False,
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    fusion: Annotated[
        str | None, typer.Option(help="weighted, rrf, dense or lexical (default: the index's).")
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option("--abstain-threshold", help="Confidence below which crampqa abstains "
                     "(default 0.10: the scorer's best probability plus the fusion margin; "
                     "with --fast, the fusion confidence, default 0.46)."),
    ] = None,
    fast: Annotated[
        bool, typer.Option("--fast", help="Rank by fusion alone, without the answer scorer.")
    ] = False,
    backend: BackendOpt = None,
    uri: UriOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Show the passages of the sources that best answer QUESTION, verbatim."""
    from crampqa.config import check_k
    from crampqa.engine import clean_question

    text = " ".join(question)
    clean_question(text)  # bad input fails before any index work
    check_k(k)
    search = search_settings(backend, uri, collection)
    qa = _open(corpus, index, quiet=as_json, search=search)
    answer = qa.ask(text, k=k, fusion=fusion, abstain_threshold=threshold,
                    scorer=False if fast else None)
    if as_json:
        from crampqa.presentation import answer_json

        print(answer_json(answer))
    else:
        from crampqa.presentation import render_answer

        render_answer(answer, out, scores=scores)


@app.command()
def index(
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Re-embed everything.")] = False,
    ann: Annotated[
        str | None, typer.Option("--ann", help="Dense index type: flat, hnsw or auto.")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for another build of this index to finish.")
    ] = False,
    engine: Annotated[
        str, typer.Option("--engine", help="Where chunking and embedding run: local, or ray "
                          "(a Ray cluster; needs pip install 'crampqa[ray]').")
    ] = "local",
    address: Annotated[
        str | None, typer.Option("--address", metavar="HOST:PORT", help="With --engine ray: "
                                 "a running Ray head (default: start a local one).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="With --engine ray: embedding workers "
                                 "(default: one per CPU of the cluster).")
    ] = None,
    backend: BackendOpt = None,
    uri: UriOpt = None,
    collection: CollectionOpt = None,
    replace_corpus: Annotated[
        bool, typer.Option("--replace-corpus", help="Rebuild an index that was built from "
                           "another folder from --corpus instead (its documents are "
                           "dropped from it).")
    ] = False,
    document_vectors: Annotated[
        bool, typer.Option("--document-vectors", help="Add document vectors and document "
                           "BM25 to an index built without them (no passage is "
                           "re-embedded; new builds include them; with --engine ray the "
                           "documents are embedded on the cluster).")
    ] = False,
) -> None:
    """Build or update the index (only new or changed documents are embedded).

    An index remembers the folder it was built from: `--index DIR` alone updates it from
    there, and another --corpus needs --replace-corpus.

    With --backend milvus --uri URI, the Milvus collection is then updated (upserts and
    deletes by source ID) and the choice recorded in the index; on an existing index this
    moves it to Milvus without embedding anything again."""
    from dataclasses import replace

    from crampqa.config import AnnKind, BuildEngine, EngineSettings, IndexSettings
    from crampqa.engine import CrampQA

    where = EngineSettings(BuildEngine.parse(engine), address=address, workers=workers)
    if document_vectors:
        with build_progress(True) as progress:
            upgrade = CrampQA.add_document_vectors(index, progress=progress,
                                                   wait_for_lock=wait, engine=where)
        _stderr(f"Added document vectors for {upgrade.documents} documents in "
                f"{upgrade.seconds:.1f} s → {upgrade.folder}" if upgrade.added else
                f"The index in {upgrade.folder.parent} already has document vectors.")
        return
    settings = IndexSettings()
    if ann is not None:
        settings = replace(settings, ann=AnnKind.parse(ann))
    search = search_settings(backend, uri, collection)
    with build_progress(True) as progress:
        summary = CrampQA.build(corpus, index, settings=settings, rebuild=rebuild,
                                progress=progress, wait_for_lock=wait, engine=where,
                                search=search, replace_corpus=replace_corpus)
    _report_build(summary)
    if summary.up_to_date and not summary.document_level:
        _stderr("This index has no document vectors (it was built before them); "
                "`crampqa index --document-vectors` adds them without re-embedding passages.")


@app.command()
def sources(
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the indexed documents with their titles."""
    qa = _open(corpus, index, quiet=as_json)
    docs = qa.sources()
    if as_json:
        print(json.dumps(docs, ensure_ascii=False, indent=2))
        return
    from crampqa.terminal import visible

    for doc in docs:  # one line a document, never wrapped (piped or not)
        print(visible(f"{doc['doc_id']}  {doc['title']}", newlines=False))


@app.command()
def show(
    source_id: Annotated[str, typer.Argument(
        metavar="SOURCE_ID", help="A source ID as answers print it, e.g. "
        "000_153f9343c5352d90#6779-6991 (a document ID alone shows the whole article).")],
    full: Annotated[bool, typer.Option(
        "--full", help="The whole article, with the passage marked.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
) -> None:
    """Show a passage in its article: its paragraph, section heading and article title."""
    from crampqa.articles import locate, parse_source_id

    parse_source_id(source_id)  # a malformed ID fails before any index work
    qa = _open(corpus, index, quiet=as_json)
    view = locate(qa, source_id)
    if as_json:
        print(json.dumps(view.to_dict(full=full), ensure_ascii=False, indent=2))
        return
    from crampqa.presentation import render_view

    render_view(view, out, full=full or "#" not in source_id)


def _size_on_disk(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _scorer_line(record: dict[str, str], on: bool) -> str:
    """The answer scorer the index records, and whether asking uses it."""
    if not record:
        return "not recorded (index written before the answer scorer)"
    use = "ranks and decides abstention" if on else "off: fusion alone (fast mode)"
    return f"{record.get('name', '?')} sha256 {record.get('sha256', '?')[:12]} ({use})"


def _search_line(search: SearchSettings) -> str:
    """Where the index's candidates are searched."""
    if search.backend == "milvus":
        return f"milvus: collection {search.collection} at {search.uri}"
    return "embedded (FAISS and BM25 in the index folder)"


def _document_line(record: dict[str, Any]) -> str:
    """Whether the index has document vectors, and how they came."""
    if not record:
        return "none (`crampqa index --document-vectors` adds them)"
    return f"yes (written by {record.get('added', '?')}, {record.get('created', '?')})"


def info_summary(qa: CrampQA) -> list[str]:
    """A few lines about the opened index, for people (`info --json` has the manifest)."""
    from crampqa.terminal import visible

    m = qa.data.manifest
    size = _size_on_disk(qa.data.folder)
    kind = m.dense.get("type") or m.settings.ann
    lines = [
        f"documents   {len(qa.data.documents)}",
        f"passages    {len(qa.data.passages)}",
        f"model       {m.model.name}",
        f"scorer      {_scorer_line(m.scorer, m.settings.retrieval.scorer)}",
        f"index type  {kind}",
        f"search      {_search_line(m.search_settings)}",


        f"doc vectors {_document_line(m.document_level)}",
        f"built       {m.created or '?'}",
        f"corpus      {m.corpus.dir or '?'}",
        f"index       {qa.data.folder} ({size / 1e6:.1f} MB on disk, {len(m.files)} files)",
    ]
    return [visible(line, newlines=False) for line in lines]


@app.command()
def info(
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    verify: Annotated[
        bool, typer.Option("--verify", help="Hash every index file again, large ones "
                           "included (opening hashes those only when first opened or "
                           "changed).")
    ] = False,
    as_json: Annotated[bool, typer.Option(
        "--json/--summary", help="Print the index manifest (JSON) instead of the summary.")
    ] = False,
) -> None:
    """Summarise the index: documents, passages, model, when and from what it was built.

    The summary is printed at a terminal and piped alike; `--json` prints the manifest
    (model, settings, corpus hashes) for scripts.
    """
    qa = _open(corpus, index, quiet=as_json)
    if verify:
        from crampqa.store import load_version

        load_version(qa.data.folder, verify_full=True)  # a mismatch is an error, exit 4
        verdict = (f"OK: the manifest and all {len(qa.data.manifest.files)} index files match "
                   "their SHA-256 checksums.")
        if as_json:  # standard output stays one JSON object
            _stderr(verdict)
        else:  # the verdict first, then the summary
            print(verdict, flush=True)
    if as_json:
        from crampqa.terminal import json_for_terminal

        print(json_for_terminal(qa.data.manifest.shown()))
        return
    for line in info_summary(qa):
        print(line)


@app.command("eval")
def eval_(
    target: Annotated[
        Path, typer.Argument(metavar="QUESTIONS_OR_BEIR_DIR",
                             help="A crampqa JSONL question set, or a BEIR folder.")
    ],
    config: Annotated[
        str | None,
        typer.Option("--config", help="One configuration: default (the index's settings: "
                     "the answer scorer), fast (fusion without the scorer), dense, bm25, "
                     "hybrid, hybrid+rescore or naive (whole documents, BEIR folders "
                     "only). Default: default."),
    ] = None,
    configs: Annotated[
        str | None,
        typer.Option("--configs", help="Comma-separated configurations, e.g. "
                     "'dense,hybrid+rescore'; the first is the baseline of the comparison."),
    ] = None,
    compare: Annotated[
        bool, typer.Option("--compare", help="Run dense, bm25, hybrid, fast and default "
                           "(and naive, for a BEIR folder); dense is the baseline.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write report.md, results.json and "
                                  "plot.png into this folder.")
    ] = None,
    run_out: Annotated[
        Path | None,
        typer.Option("--run-out", help="Write the run in TREC format (qid Q0 docid rank "
                     "score tag). With several configurations FILE holds the first and "
                     "FILE.<config> each other one."),
    ] = None,
    # no environment variables here: CRAMPQA_INDEX must not send a BEIR corpus into
    # the index of the everyday corpus
    corpus: Annotated[
        Path | None,
        folder_option("--corpus", "Corpus of a question set (default: the index's, or "
                      "corpus/). Not used with a BEIR folder."),
    ] = None,
    index: Annotated[
        Path | None,
        folder_option("--index", "Index folder (default: indexes/default for a question "
                      "set, indexes/beir-<folder name> for a BEIR folder, built if "
                      "missing)."),
    ] = None,
    split: Annotated[str | None, typer.Option(
        "--split", help="BEIR qrels split (default: the folder's only one, or dev).")] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", help="Evaluate only the first N questions or "
                                 "queries (quick runs).")
    ] = None,
    k: Annotated[int, typer.Option("-k", "--top", help="How many results to rank per "
                                   "question (passages; documents for a BEIR folder): the "
                                   "depth of the metrics.")] = 10,
    backend: BackendOpt = None,
    uri: UriOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Evaluate retrieval on a question set or BEIR split: metrics, comparison, report."""
    from crampqa.errors import EvalError
    from crampqa.evaluation import report as rep
    from crampqa.evaluation.runner import COMPARE_ORDER, DEFAULT_CONFIG, evaluate_path

    chosen = [o for o, given in (("--config", config is not None),
                                 ("--configs", configs is not None),
                                 ("--compare", compare)) if given]
    if len(chosen) > 1:
        raise EvalError(f"Use only one of {', '.join(chosen)}.")
    names = (list(COMPARE_ORDER) if compare else configs.split(",") if configs is not None
             else [config or DEFAULT_CONFIG])  # --compare: by the kind of set, below

    def opened(qa: CrampQA) -> None:
        _report_opened(qa, quiet=as_json)

    with build_progress(True) as progress:  # on stderr: also under --json
        result = evaluate_path(target, names, k=k, split=split, limit=limit, corpus=corpus,
                               index=index, progress=progress, on_open=opened,
                               search=search_settings(backend, uri, collection),
                               compare=compare)
    if as_json:
        print(rep.result_json(result))
    else:
        rep.print_result(result, out)
    if run_out is not None:
        for path in rep.write_runs(result, run_out):
            _stderr(f"Wrote run {rep.shown_path(path)}")
    if report is not None:
        rep.write_report(result, report)
        _stderr(f"Wrote report.md, results.json and plot.png to {rep.shown_path(report)}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8765,
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    threads: Annotated[int | None, typer.Option(
        min=1, max=64, show_default="one per usable CPU, at most 8",
        help="Questions answered at once (engine threads).")] = None,
    access_log: Annotated[bool, typer.Option(
        "--access-log/--no-access-log", help="Log every request on stderr.")] = False,
    request_timeout: Annotated[float, typer.Option(
        min=0.1, max=600, help="Seconds a client has to send a whole request (headers and "
        "body); slower ones get 408 and are disconnected.")] = 10.0,
    backend: BackendOpt = None,
    uri: UriOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Serve the web page and JSON API (http://127.0.0.1:8765/; OpenAPI at /openapi.json)."""
    import socket

    try:
        import uvicorn

        from crampqa.web.app import LOOPBACK_HOSTS, create_app
        from crampqa.web.protocol import protocol_class
    except ImportError as exc:
        raise CrampQAError(f"The web service needs the web extras ({exc.name} is missing); "
                           "install them with: pip install 'crampqa[web]'.") from None

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:  # a clear message instead of a server traceback when the port is taken
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise InputError(f"Cannot listen on {host}:{port} ({exc.strerror}); "
                         "choose another --port or --host.") from None
    qa = _open(corpus, index, search=search_settings(backend, uri, collection))
    from crampqa.store import verify_files

    verify_files(qa.data.folder, qa.data.manifest, full=True)  # large files too, once
    qa.load_scorer()  # a damaged scorer is refused here, before anything is announced
    local = host in LOOPBACK_HOSTS
    if not local:
        _stderr(f"crampqa: warning: listening on {host}, reachable from other machines; "
                "crampqa is meant for local use.")
    shown = f"[{host}]" if ":" in host else host
    _stderr(f"crampqa: serving on http://{shown}:{port}/ (OpenAPI at /openapi.json; "
            "Ctrl+C stops)")
    uvicorn.run(create_app(qa, allowed_hosts=LOOPBACK_HOSTS if local else None,
                           engine_threads=threads),
                host=host, port=port, log_level="info", access_log=access_log,
                http=protocol_class(request_timeout))


COMMANDS = ("ask", "show", "sources", "info", "index", "eval", "serve")
#: Options that take a value, so the value is not mistaken for a word of the question.
_VALUE_OPTIONS = frozenset({"-k", "--top", "--corpus", "--index", "--fusion",
                            "--abstain-threshold", "--backend", "--uri", "--collection"})
#: `ask`'s options that take no value.
_FLAGS = frozenset({"--json", "--scores", "--fast"})
#: A source ID as answers print it (``DOC_ID#START-END``).
_SOURCE_ID_WORD = re.compile(r"^\S+#\d+-\d+$")


def _words(args: list[str]) -> list[str]:
    """The positional arguments of ``args`` (option values and options left out)."""
    words: list[str] = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg == "--":
            return words + args[i + 1:]
        if arg.startswith("-") and len(arg) > 1:
            skip = arg in _VALUE_OPTIONS
            continue
        words.append(arg)
    return words


def _options_after_dashes(args: list[str]) -> list[str]:
    """``args`` with `ask`'s options that follow the question after ``--`` moved before it.

    ``crampqa -- "-5 degrees and my calves cramp" -k 1``: ``--`` is there for the question
    that starts with '-'; the first word after it always belongs to the question, and a
    later word that is exactly an option of `ask` (with its value) is that option.
    """
    if "--" not in args:
        return args
    cut = args.index("--")
    before, after = args[:cut], args[cut + 1:]
    options: list[str] = []
    words = after[:1]
    i = 1
    while i < len(after):
        arg = after[i]
        name = arg.split("=", 1)[0]
        if arg in _FLAGS or (name in _VALUE_OPTIONS and "=" in arg):
            options.append(arg)
        elif arg in _VALUE_OPTIONS and i + 1 < len(after):
            options += after[i:i + 2]
            i += 1
        else:
            words.append(arg)
        i += 1
    return [*before, *options, "--", *words]


def _distance(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions and swaps of neighbours)."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1,
                         rows[-1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def did_you_mean(word: str) -> str | None:
    """The command a one-word "question" is a small typo of (``soruces`` -> ``sources``)."""
    word = word.lower()
    if not word.isalpha() or len(word) < 3:
        return None
    best = min(COMMANDS, key=lambda command: _distance(word, command))
    limit = 1 if len(best) <= 4 else 2
    return best if 0 < _distance(word, best) <= limit else None


def _route(args: list[str]) -> list[str]:
    """Turn what a person types into a command line the app understands.

    `crampqa why do my calves cramp` and `crampqa "why ..."` mean `crampqa ask ...`;
    `crampqa help [COMMAND]` shows the help; a one-word question that is a typo of a
    command (`crampqa soruces`) is an error that names the command.
    """
    if not args:
        return args
    first = args[0]
    if first == "help" and (len(args) == 1 or (len(args) == 2 and args[1] in COMMANDS)):
        return [*args[1:], "--help"]
    if first == "ask":
        return ["ask", *_options_after_dashes(args[1:])]
    if first in COMMANDS or first in ("--help", "-h", "--version"):
        return args
    words = _words(args)
    if not words:
        return args  # options alone: click explains what is wrong
    typo = "--" not in args and (
        len(words) == 1 or (len(words) == 2 and _SOURCE_ID_WORD.match(words[1]) is not None))
    command = did_you_mean(words[0]) if typo else None
    if command is not None:
        rest = " ".join(words[1:])
        asked = " ".join(words)
        raise InputError(f"'{words[0]}' is not a command; did you mean "
                         f"`crampqa {' '.join([command, *words[1:]])}`? (To ask it as a "
                         f"question: crampqa ask {asked})" if rest else
                         f"'{words[0]}' is not a command; did you mean `crampqa {command}`? "
                         f"(To ask it as a question: crampqa ask {asked})")
    return ["ask", *_options_after_dashes(args)]


def _dash_hint(args: list[str], option: str | None = None) -> str:
    """For an unknown option: how to ask a question that starts with '-' (the unknown
    option and the words after it, up to the next option)."""
    for i, arg in enumerate(args):
        if arg == "--":
            break
        unknown = bool(option and arg.startswith(option)) or len(arg) > 2 or " " in arg
        if arg.startswith("-") and not arg.startswith("--") and unknown:
            words = [arg]
            for word in args[i + 1:]:
                if word.startswith("-"):
                    break
                words.append(word)
            return (f" A question that starts with '-' goes after '--': "
                    f"crampqa -- \"{' '.join(words)}\"")
    return ""


# typer >= 0.20 raises its own copy of click's exceptions; older ones raise click's
_CLICK_ERRORS: tuple[type[Exception], ...] = (
    click.ClickException, getattr(typer, "TyperException", click.ClickException))
_ABORT: tuple[type[BaseException], ...] = (click.exceptions.Abort, typer.Abort,
                                            KeyboardInterrupt)
_EXIT: tuple[type[BaseException], ...] = (click.exceptions.Exit, typer.Exit)


def _fail(error: CrampQAError, wants_json: bool) -> NoReturn:
    """Print ``error`` as one line on stderr (and as JSON on stdout with --json), exit."""
    if wants_json:
        print(json.dumps(error.to_dict(), ensure_ascii=False), flush=True)
    _stderr("crampqa: error: " + " ".join(error.message.splitlines()))
    raise SystemExit(error.exit_code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and turn every failure into one clear line.

    This is the one place where the CLI turns exceptions into output and exit codes
    (docs/errors.md lists them). ``CRAMPQA_DEBUG=1`` shows unexpected tracebacks.
    """
    given = list(sys.argv[1:] if argv is None else argv)
    wants_json = "--json" in given
    args = given
    try:
        args = _route(given)
        code = app(args=args, prog_name="crampqa", standalone_mode=False)
    except CrampQAError as exc:
        _fail(exc, wants_json)
    except _ABORT:
        _stderr("crampqa: interrupted")
        raise SystemExit(130) from None
    except _CLICK_ERRORS as exc:  # a bad option or argument: exit 2, like InputError
        message = exc.format_message()  # type: ignore[attr-defined]
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `crampqa`: the help, no error
            print(message)
            raise SystemExit(0) from None
        code = int(getattr(exc, "exit_code", 2))
        if type(exc).__name__ == "NoSuchOption":
            message = message.rstrip(".") + "." + _dash_hint(
                args, getattr(exc, "option_name", None))
        error = InputError(message) if code == 2 else CrampQAError(message)
        error.exit_code = code
        _fail(error, wants_json)
    except _EXIT as exc:
        raise SystemExit(exc.exit_code) from None  # type: ignore[attr-defined]
    except Exception as exc:
        if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
            _stderr("crampqa: interrupted")  # e.g. Ctrl+C while a module was importing
            raise SystemExit(130) from None
        if env_flag("CRAMPQA_DEBUG"):
            raise
        _fail(unexpected(exc), wants_json)
    # Outside standalone mode click returns (instead of raising) the code of an Exit;
    # Ctrl+C arrives this way as 130.
    if isinstance(code, int) and code != 0:
        if code == 130:
            _stderr("crampqa: interrupted")
        raise SystemExit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
