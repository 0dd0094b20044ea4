"""Cutting a document into sentence-aware passages with exact offsets.

Every span here is a pair of character offsets into the document's decoded
text; a passage's text is always ``text[start:end]``. Nothing is rewritten:
headings and table headers are kept as *separate* verbatim spans that a
passage points to, never glued into its text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from crampqa.config import ChunkSettings

KIND_TEXT = "text"
KIND_LIST = "list"
KIND_TABLE_ROW = "table_row"
KINDS = (KIND_TEXT, KIND_LIST, KIND_TABLE_ROW)

Span = tuple[int, int]

_LINKBAIT = re.compile(
    r"^\W{0,6}\s*(?:you\s+(?:might|may)\s+also\s+like|related(?:\s+(?:reading|posts?|articles?))?"
    r"|see\s+also|read\s+(?:more|also|next)|also\s+read|recommended(?:\s+for\s+you)?"
    r"|don['’]t\s+miss|more\s+from\s+us)\s*[:：]",
    re.IGNORECASE,
)
_LIST_ITEM = re.compile(r"^\s*(?:[-*•+–]\s+|\d{1,3}[.)]\s+|[a-z][.)]\s+)")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+\S")
_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
_SENTENCE_END = re.compile(r"[.!?…]+[\"”’')\]]*(?=\s+[\"“‘'(\[]?[A-Z0-9])")
_ABBREVIATIONS = frozenset(
    "e.g i.e dr mr mrs ms vs etc al st no fig approx u.s jr sr inc ltd mt cf ca".split()
)
_TERMINAL = ".!?:;…"


@dataclass(frozen=True)
class Chunk:
    """A passage before it is stored: spans into its document's text."""

    start: int
    end: int
    kind: str
    heading: Span | None = None
    context: Span | None = None  # a table's header row, for reading a row
    sentences: tuple[Span, ...] = field(default=())


@dataclass(frozen=True)
class _Line:
    start: int
    end: int
    kind: str  # blank | linkbait | heading | table | table_sep | list | text


def is_linkbait(line: str) -> bool:
    """True for 'You might also like: …'-style lines that point elsewhere."""
    return bool(_LINKBAIT.match(line.strip()))


def _is_heading(line: str) -> bool:
    stripped = line.strip()
    if _MD_HEADING.match(stripped):
        return True
    if not stripped or len(stripped) > 120:
        return False
    core = stripped.rstrip("\"”’')] ")
    words = core.split()
    if len(words) > 16:
        return False
    if not core or core[-1] not in _TERMINAL:
        return True
    if core.endswith("?"):  # "Why Do These Symptoms Occur?" (title case) is a heading
        alpha = [w for w in words if w[:1].isalpha()]
        caps = sum(1 for w in alpha if w[:1].isupper())
        return len(alpha) >= 2 and caps / len(alpha) >= 0.6
    return False


def _classify(text: str) -> list[_Line]:
    lines: list[_Line] = []
    pos = 0
    for raw in text.splitlines(keepends=True):
        body = raw.rstrip("\r\n")
        start, end = pos, pos + len(body)
        pos += len(raw)
        stripped = body.strip()
        if not stripped:
            kind = "blank"
        elif is_linkbait(stripped):
            kind = "linkbait"
        elif stripped.startswith("|"):
            kind = "table_sep" if _TABLE_SEPARATOR.match(stripped) else "table"
        elif _LIST_ITEM.match(body) and not (_is_heading(body) and re.match(r"^\s*\d", body)):
            kind = "list"
        elif _is_heading(body):
            kind = "heading"
        else:
            kind = "text"
        # trim surrounding whitespace so spans start and end on visible characters
        lead = len(body) - len(body.lstrip())
        trail = len(body) - len(body.rstrip())
        lines.append(_Line(start + lead, end - trail, kind))
    return lines


def split_sentences(text: str, start: int, end: int) -> list[Span]:
    """Sentence spans within ``text[start:end]``, trimmed of outer whitespace."""
    segment = text[start:end]
    spans: list[Span] = []
    cursor = 0
    for match in _SENTENCE_END.finditer(segment):
        stop = match.end()
        word = re.search(r"([\w.]+)[.!?…]*[\"”’')\]]*$", segment[cursor:stop])
        token = word.group(1).rstrip(".").lower() if word else ""
        if token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha()):
            continue
        spans.append((cursor, stop))
        cursor = stop
    spans.append((cursor, len(segment)))
    result: list[Span] = []
    for s, e in spans:
        piece = segment[s:e]
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece) - len(piece.rstrip())
        if e - trail > s + lead:
            result.append((start + s + lead, start + e - trail))
    return result


def _group_sentences(sentences: list[Span], max_chars: int) -> list[list[Span]]:
    """Balanced groups of consecutive sentences, each at most ``max_chars`` if possible."""
    if not sentences:
        return []
    total = sentences[-1][1] - sentences[0][0]
    if total <= max_chars:
        return [sentences]
    parts = -(-total // max_chars)
    target = total / parts
    groups: list[list[Span]] = [[]]
    for span in sentences:
        group = groups[-1]
        if group:
            length = span[1] - group[0][0]
            if length > max_chars or (span[0] - group[0][0]) >= target:
                groups.append([])
        groups[-1].append(span)
    return groups


def _is_intro(text: str, sentences: list[Span]) -> bool:
    """A line ending in a colon introduces the list that follows it."""
    return bool(sentences) and text[sentences[-1][0] : sentences[-1][1]].rstrip().endswith(":")


#: Line kinds that never become passage text.
_NO_TEXT = frozenset({"blank", "linkbait", "table_sep"})


def no_passage_reason(text: str) -> str | None:
    """Why :func:`chunk_text` yields no passage for ``text``, or None when it yields one.

    Only blank lines, 'See also: …'-style link lines and table rules give none.
    """
    if any(line.kind not in _NO_TEXT for line in _classify(text)):
        return None
    return "no passage text (only 'See also: …'-style link lines or table rules)"


def chunk_text(text: str, settings: ChunkSettings | None = None) -> list[Chunk]:
    """Cut ``text`` into passages; see the module docstring for the guarantees.

    A document of only heading-like lines (notes, one-liners such as "Magnesium dose
    400 mg daily", a lone table header) would give no passage: its lines are then read
    as text, so every document with text yields at least one passage (see
    :func:`no_passage_reason` for the exceptions).
    """
    lines = _classify(text)
    chunks = _chunk_lines(text, lines, settings or ChunkSettings())
    if not chunks:
        lines = [_Line(line.start, line.end, "text") if line.kind in ("heading", "table")
                 else line for line in lines]
        chunks = _chunk_lines(text, lines, settings or ChunkSettings())
    return chunks


def _chunk_lines(text: str, lines: list[_Line], settings: ChunkSettings) -> list[Chunk]:
    max_chars = settings.max_chars
    min_chars = max(1, max_chars // 4)
    chunks: list[Chunk] = []
    heading: Span | None = None
    table_header: Span | None = None
    # pending: sentence/line units of the current paragraph or list, merged greedily
    pending: list[tuple[str, list[Span]]] = []

    def flush() -> None:
        merged: list[tuple[str, list[Span]]] = []
        for kind, sents in pending:
            if merged:
                prev_kind, prev = merged[-1]
                size = sents[-1][1] - prev[0][0]
                prev_size = prev[-1][1] - prev[0][0]
                this_size = sents[-1][1] - sents[0][0]
                small = prev_size < min_chars or this_size < min_chars
                if small and size <= max_chars:
                    merged[-1] = (prev_kind if prev_kind == kind else KIND_LIST, prev + sents)
                    continue
            merged.append((kind, list(sents)))
        for kind, sents in merged:
            chunks.append(Chunk(sents[0][0], sents[-1][1], kind, heading, None, tuple(sents)))
        pending.clear()

    for line in lines:
        if line.kind == "blank":
            continue
        if line.kind == "linkbait":
            flush()
            continue
        if line.kind == "heading":
            flush()
            heading = (line.start, line.end)
            table_header = None
            continue
        if line.kind in ("table", "table_sep"):
            flush()
            if line.kind == "table_sep":
                continue
            if table_header is None:
                table_header = (line.start, line.end)
                continue
            span = (line.start, line.end)
            chunks.append(Chunk(span[0], span[1], KIND_TABLE_ROW, heading, table_header, (span,)))
            continue
        table_header = None
        sentences = split_sentences(text, line.start, line.end)
        kind = KIND_LIST if line.kind == "list" else KIND_TEXT
        if kind == KIND_LIST:
            if pending and pending[-1][0] == KIND_TEXT and not _is_intro(text, pending[-1][1]):
                flush()
        elif (pending and pending[-1][0] == KIND_LIST) or _is_intro(text, sentences):
            flush()  # a list ended, or "… include:" starts one
        for group in _group_sentences(sentences, max_chars):
            pending.append((kind, group))
    flush()
    return chunks
