"""Loaders for evaluation data: crampqa question sets and BEIR folders.

crampqa question sets are JSONL, one object per line::

    {"id": "q1", "question": "...", "evidence": ["verbatim snippet", ...],
     "answerable": true, "doc_ids": ["doc-a"], "tags": ["magnesium"]}

``doc_ids`` and ``tags`` are optional; other keys are ignored; blank lines
are skipped. An answerable question needs at least one evidence snippet;
unanswerable questions may list none.

BEIR folders hold ``queries.jsonl``, ``qrels/<split>.tsv`` and
``corpus.jsonl`` (or ``corpus.jsonl.gz``). Every problem is reported as a
one-line :class:`~crampqa.errors.EvalError` naming the file (and line).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from crampqa.errors import EvalError

_QUOTES = str.maketrans(
    {
        "\u2018": "'",  # left single quotation mark
        "\u2019": "'",  # right single quotation mark / apostrophe
        "\u201a": "'",  # single low-9 quotation mark
        "\u201b": "'",  # single high-reversed-9 quotation mark
        "\u2032": "'",  # prime
        "\u02bc": "'",  # modifier letter apostrophe
        "\u201c": '"',  # left double quotation mark
        "\u201d": '"',  # right double quotation mark
        "\u201e": '"',  # double low-9 quotation mark
        "\u201f": '"',  # double high-reversed-9 quotation mark
        "\u2033": '"',  # double prime
    }
)

_GZIP_MAGIC = b"\x1f\x8b"
_SHOW = 5  # how many offending ids an error message lists


@dataclass(frozen=True)
class Question:
    """One evaluation question with the verbatim evidence that answers it."""

    id: str
    question: str
    evidence: tuple[str, ...]
    answerable: bool
    doc_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass
class BeirSet:
    """A BEIR split: where the corpus is, plus queries and qrels for the split."""

    corpus_path: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


# --------------------------------------------------------------------------- text matching


def normalize_for_match(text: str) -> str:
    """Casefold, straighten curly quotes/apostrophes, collapse whitespace runs, strip."""
    return " ".join(text.casefold().translate(_QUOTES).split())


def contains_evidence(passage_text: str, evidence: Sequence[str]) -> bool:
    """True when any evidence snippet occurs in the passage after normalisation.

    Snippets that normalise to the empty string never match.
    """
    passage = normalize_for_match(passage_text)
    for snippet in evidence:
        needle = normalize_for_match(snippet)
        if needle and needle in passage:
            return True
    return False


def check_evidence_in_corpus(
    questions: Iterable[Question], documents: Mapping[str, str]
) -> list[str]:
    """Problems with the questions' evidence against ``documents`` (doc id -> text).

    Reports, one line each: evidence snippets found in no document after
    normalisation, ``doc_ids`` that are not in the corpus, and snippets found
    only in documents other than the question's ``doc_ids``. Empty means fine.
    """
    normalised = {doc_id: normalize_for_match(text) for doc_id, text in documents.items()}
    problems: list[str] = []
    for q in questions:
        unknown = [d for d in q.doc_ids if d not in normalised]
        for doc_id in unknown:
            problems.append(f"question {q.id!r}: doc_id {doc_id!r} is not in the corpus")
        for snippet in q.evidence:
            needle = normalize_for_match(snippet)
            short = _shorten(snippet)
            if not needle:
                problems.append(f"question {q.id!r}: evidence snippet {short!r} is empty")
                continue
            found_in = [doc_id for doc_id, text in normalised.items() if needle in text]
            if not found_in:
                problems.append(
                    f"question {q.id!r}: evidence snippet {short!r} is found in no document"
                )
            elif q.doc_ids and not set(found_in) & set(q.doc_ids):
                problems.append(
                    f"question {q.id!r}: evidence snippet {short!r} is not in its doc_ids "
                    f"{list(q.doc_ids)} but in {found_in[:_SHOW]}"
                )
    return problems


def _shorten(text: str, limit: int = 60) -> str:
    """First ``limit`` characters of a snippet, for messages."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- question sets


def _require_file(path: Path, what: str, hint: str) -> None:
    """Raise EvalError unless ``path`` is an existing regular file."""
    if not path.exists():
        raise EvalError(f"{what} {path} not found; {hint}.")
    if not path.is_file():
        raise EvalError(f"{what} {path} is not a file; {hint}.")


def _read_lines(path: Path, what: str) -> list[str]:
    """All lines of a UTF-8 text file, with a clear error if it cannot be read."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise EvalError(
            f"{what} {path} is not valid UTF-8 (byte {exc.start}); save it as UTF-8."
        ) from exc
    except OSError as exc:
        raise EvalError(f"Cannot read {what.lower()} {path}: {exc.strerror}.") from exc


def _parse_object(line: str, where: str, what: str) -> dict[str, Any]:
    """Parse one JSONL line into a dict or raise EvalError naming ``where``."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise EvalError(
            f"{where}: invalid JSON ({exc.msg} at column {exc.colno}); "
            f"each line must be one {what} JSON object."
        ) from exc
    if not isinstance(obj, dict):
        raise EvalError(
            f"{where}: expected a JSON object, got {type(obj).__name__}; "
            f"each line must be one {what} JSON object."
        )
    return obj


def _str_field(obj: Mapping[str, Any], key: str, where: str) -> str:
    """A required, non-blank string field."""
    if key not in obj:
        raise EvalError(f"{where}: missing field {key!r}; add it as a non-empty string.")
    value = obj[key]
    if not isinstance(value, str) or not value.strip():
        raise EvalError(
            f"{where}: field {key!r} must be a non-empty string, got {value!r}; fix the value."
        )
    return value


def _str_list_field(
    obj: Mapping[str, Any], key: str, where: str, required: bool
) -> tuple[str, ...]:
    """A list of non-blank strings (optional fields default to empty)."""
    if key not in obj:
        if required:
            raise EvalError(f"{where}: missing field {key!r}; add it as a list of strings.")
        return ()
    value = obj[key]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise EvalError(
            f"{where}: field {key!r} must be a list of non-empty strings, got {value!r}; "
            "fix the value."
        )
    return tuple(value)


#: Keys a question set's optional header line may carry (instead of a question).
HEADER_KEYS = frozenset({"tuning", "about"})


def _is_header(obj: Mapping[str, Any]) -> bool:
    return "id" not in obj and "question" not in obj and bool(obj) and set(obj) <= HEADER_KEYS


def question_set_header(path: Path) -> dict[str, Any]:
    """The optional header of a question set: its first line when that line is an object
    such as ``{"tuning": true, "about": "..."}`` (no ``id``/``question``); else ``{}``.

    ``"tuning": true`` declares that the set was used to tune crampqa, so its figures are
    in-sample; `crampqa eval` says so beside them.
    """
    for line in _read_lines(Path(path), "Question file"):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            return {}
        if isinstance(obj, dict) and _is_header(obj):
            if "tuning" in obj and not isinstance(obj["tuning"], bool):
                raise EvalError(f"{path}:1: header field 'tuning' must be true or false, "
                                f"got {obj['tuning']!r}.")
            return dict(obj)
        return {}
    return {}


def load_questions(path: Path) -> list[Question]:
    """Load a crampqa JSONL question set, validating every line (the optional header line,
    see :func:`question_set_header`, is not a question)."""
    path = Path(path)
    _require_file(path, "Question file", "pass the path to a crampqa JSONL question set")
    questions: list[Question] = []
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(_read_lines(path, "Question file"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        obj = _parse_object(line, where, "question")
        if not questions and not first_line and _is_header(obj):
            question_set_header(path)  # validates it
            continue
        qid = _str_field(obj, "id", where)
        text = _str_field(obj, "question", where)
        evidence = _str_list_field(obj, "evidence", where, required=True)
        if "answerable" not in obj:
            raise EvalError(f"{where}: missing field 'answerable'; add true or false.")
        answerable = obj["answerable"]
        if not isinstance(answerable, bool):
            raise EvalError(
                f"{where}: field 'answerable' must be true or false, got {answerable!r}."
            )
        if qid in first_line:
            raise EvalError(
                f"{where}: duplicate question id {qid!r} (first on line {first_line[qid]}); "
                "give every question a unique id."
            )
        if answerable and not evidence:
            raise EvalError(
                f"{where}: question {qid!r} is answerable but has no evidence; add the "
                "verbatim snippet(s) that answer it, or set answerable to false."
            )
        first_line[qid] = lineno
        questions.append(
            Question(
                id=qid,
                question=text,
                evidence=evidence,
                answerable=answerable,
                doc_ids=_str_list_field(obj, "doc_ids", where, required=False),
                tags=_str_list_field(obj, "tags", where, required=False),
            )
        )
    if not questions:
        raise EvalError(f"Question file {path} contains no questions; add one JSON object a line.")
    return questions


# --------------------------------------------------------------------------- BEIR


def _doc_id(value: Any) -> str | None:
    """BEIR ids are strings; some exports write integers. Anything else is invalid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def _list_some(ids: Iterable[str]) -> str:
    """A short, sorted, quoted list of ids for an error message."""
    ordered = sorted(ids)
    shown = ", ".join(repr(i) for i in ordered[:_SHOW])
    return shown + (f" and {len(ordered) - _SHOW} more" if len(ordered) > _SHOW else "")


def _load_beir_queries(path: Path) -> dict[str, str]:
    """``queries.jsonl`` -> {query id: text}."""
    queries: dict[str, str] = {}
    for lineno, line in enumerate(_read_lines(path, "BEIR queries file"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        obj = _parse_object(line, where, "query")
        qid = _doc_id(obj.get("_id"))
        if qid is None:
            raise EvalError(f"{where}: field '_id' must be a non-empty string; fix the query.")
        text = obj.get("text")
        if not isinstance(text, str):
            raise EvalError(f"{where}: field 'text' must be a string; fix query {qid!r}.")
        if qid in queries:
            raise EvalError(f"{where}: duplicate query id {qid!r}; query ids must be unique.")
        queries[qid] = text
    if not queries:
        raise EvalError(f"BEIR queries file {path} contains no queries; add JSON query lines.")
    return queries


def _load_beir_qrels(path: Path) -> dict[str, dict[str, int]]:
    """``qrels/<split>.tsv`` (``query-id corpus-id score``, header optional) -> qrels."""
    qrels: dict[str, dict[str, int]] = {}
    header_allowed = True
    for lineno, raw in enumerate(_read_lines(path, "BEIR qrels file"), start=1):
        if not raw.strip():
            continue
        where = f"{path}:{lineno}"
        fields = [f.strip() for f in raw.split("\t")]
        if header_allowed and fields[0].lower() in ("query-id", "query_id", "qid"):
            header_allowed = False  # the optional header line
            continue
        header_allowed = False
        if len(fields) != 3 or not fields[0] or not fields[1]:
            raise EvalError(
                f"{where}: expected 3 tab-separated fields 'query-id corpus-id score', got "
                f"{len(fields)}: {raw.strip()!r}."
            )
        qid, docid, score_text = fields
        try:
            score = int(score_text)
        except ValueError:
            raise EvalError(
                f"{where}: relevance score {score_text!r} is not an integer; use e.g. 0, 1, 2."
            ) from None
        previous = qrels.setdefault(qid, {}).get(docid)
        if previous is not None and previous != score:
            raise EvalError(
                f"{where}: query {qid!r} judges document {docid!r} twice ({previous} and "
                f"{score}); keep one judgement."
            )
        qrels[qid][docid] = score
    if not qrels:
        raise EvalError(f"BEIR qrels file {path} contains no judgements; add qrels lines.")
    return qrels


def beir_split(folder: Path, split: str | None) -> str:
    """``split``, or when None the folder's only qrels split (``dev`` when it has several
    and one of them is ``dev``)."""
    if split is not None:
        return split
    available = sorted(p.stem for p in (Path(folder) / "qrels").glob("*.tsv"))
    if len(available) == 1:
        return available[0]
    if "dev" in available or not available:
        return "dev"
    raise EvalError(f"{folder} has several qrels splits ({', '.join(available)}); choose one "
                    "with --split.")


def load_beir(folder: Path, split: str = "dev") -> BeirSet:
    """Load a BEIR folder's queries and qrels for ``split`` and locate its corpus.

    Only queries that have qrels for the split are kept (those are the ones
    evaluated); qrels for unknown query ids are an error. ``corpus.jsonl`` is
    preferred over ``corpus.jsonl.gz`` when both exist. The corpus is not read
    here; stream it with :func:`iter_beir_corpus`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise EvalError(
            f"BEIR folder {folder} not found; pass a folder with queries.jsonl, "
            "qrels/<split>.tsv and corpus.jsonl[.gz]."
        )
    queries_path = folder / "queries.jsonl"
    _require_file(queries_path, "BEIR queries file", "the folder needs a queries.jsonl")
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        available = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise EvalError(
            f"BEIR qrels file {qrels_path} not found; available splits: "
            f"{', '.join(available) if available else 'none'}."
        )
    corpus_path = next(
        (p for p in (folder / "corpus.jsonl", folder / "corpus.jsonl.gz") if p.is_file()), None
    )
    if corpus_path is None:
        raise EvalError(
            f"BEIR corpus not found in {folder}; expected corpus.jsonl or corpus.jsonl.gz."
        )

    all_queries = _load_beir_queries(queries_path)
    qrels = _load_beir_qrels(qrels_path)
    unknown = set(qrels) - set(all_queries)
    if unknown:
        raise EvalError(
            f"BEIR qrels file {qrels_path} refers to {len(unknown)} query id(s) missing from "
            f"{queries_path}: {_list_some(unknown)}; fix the ids or the split."
        )
    queries = {qid: text for qid, text in all_queries.items() if qid in qrels}
    return BeirSet(corpus_path=corpus_path, queries=queries, qrels=qrels)


def _open_text(path: Path) -> IO[str]:
    """Open a UTF-8 text file, transparently gunzipping it if it is gzip data."""
    with path.open("rb") as fh:
        magic = fh.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def iter_beir_corpus(path: Path) -> Iterator[tuple[str, str, str]]:
    """Stream ``(doc_id, title, text)`` from a BEIR corpus (plain or gzipped JSONL).

    A missing title is ``""``. Malformed lines and duplicate ids raise
    EvalError with the line number.
    """
    path = Path(path)
    _require_file(path, "BEIR corpus", "expected corpus.jsonl or corpus.jsonl.gz")
    seen: set[str] = set()
    lineno = 0
    try:
        with _open_text(path) as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                obj = _parse_object(line, where, "document")
                doc_id = _doc_id(obj.get("_id"))
                if doc_id is None:
                    raise EvalError(
                        f"{where}: field '_id' must be a non-empty string; fix the document."
                    )
                title = obj.get("title") or ""
                text = obj.get("text")
                if not isinstance(title, str) or not isinstance(text, str):
                    raise EvalError(
                        f"{where}: document {doc_id!r} needs string 'text' (and optional "
                        "string 'title'); fix the document."
                    )
                if doc_id in seen:
                    raise EvalError(
                        f"{where}: duplicate document id {doc_id!r}; document ids must be unique."
                    )
                seen.add(doc_id)
                yield doc_id, title, text
    except UnicodeDecodeError as exc:
        raise EvalError(
            f"BEIR corpus {path} is not valid UTF-8 near line {lineno + 1}; save it as UTF-8."
        ) from exc
    except (OSError, EOFError) as exc:
        raise EvalError(
            f"Cannot read BEIR corpus {path} near line {lineno + 1} ({exc}); "
            "the file may be truncated or corrupt."
        ) from exc


def validate_qrels_docs(beir: BeirSet, doc_ids: set[str]) -> None:
    """Raise EvalError if any qrels document id is missing from ``doc_ids``."""
    missing = {d for judged in beir.qrels.values() for d in judged} - doc_ids
    if missing:
        raise EvalError(
            f"The qrels judge {len(missing)} document id(s) not in corpus {beir.corpus_path}: "
            f"{_list_some(missing)}; use the matching corpus or fix the qrels."
        )
