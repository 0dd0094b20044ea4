"""Cutting a document into sentence-aware passages with exact offsets.

Every span here is a pair of character offsets into the document's decoded
text; a passage's text is always ``text[start:end]``. Nothing is rewritten:
headings, table header rows and the lines that introduce lists are kept as *separate*
verbatim spans that a passage points to, never glued into its text.
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
    context: Span | None = None  # a table row's header row, or a list's introduction line
    sentences: tuple[Span, ...] = field(default=())


@dataclass(frozen=True)
class _Line:
    start: int
    end: int
    kind: str  # blank | linkbait | heading | table | table_sep | list | text


def _cell_spans(line: str, offset: int) -> list[Span]:
    """The trimmed cells of a markdown table line, as document offsets."""
    spans: list[Span] = []
    pos = 0
    parts = line.split("|")
    for i, part in enumerate(parts):
        start, end = pos, pos + len(part)
        pos = end + 1
        if (i == 0 or i == len(parts) - 1) and not part.strip():
            continue  # outside the leading or trailing pipe
        lead = len(part) - len(part.lstrip())
        trail = len(part) - len(part.rstrip())
        if end - trail > start + lead:
            spans.append((offset + start + lead, offset + end - trail))
        else:
            spans.append((offset + start + lead, offset + start + lead))
    return spans


def row_cells(header: str, header_start: int, row: str, row_start: int
              ) -> list[tuple[Span | None, Span]]:
    """Pairs (header cell, row cell) of a table row, as document offsets; empty row cells
    are left out, and a cell beyond the header has no header (None)."""
    heads = _cell_spans(header, header_start)
    pairs: list[tuple[Span | None, Span]] = []
    for i, cell in enumerate(_cell_spans(row, row_start)):
        if cell[1] > cell[0]:
            head = heads[i] if i < len(heads) and heads[i][1] > heads[i][0] else None
            pairs.append((head, cell))
    return pairs


def is_linkbait(line: str) -> bool:
    """True for 'You might also like: …'-style lines that point elsewhere."""
    return bool(_LINKBAIT.match(line.strip()))


_MD_MARKERS = re.compile(r"^\s{0,3}#{1,6}\s+")
_MD_CLOSING = re.compile(r"\s+#+\s*$")


def heading_words(text: str, start: int, end: int) -> tuple[int, int]:
    """The span of a heading line ``text[start:end]`` without its Markdown markers
    (``## How often to water ##`` -> ``How often to water``): still a verbatim slice."""
    line = text[start:end]
    lead = _MD_MARKERS.match(line)
    if lead is None:
        return start, end
    body_start = start + lead.end()
    closing = _MD_CLOSING.search(text, body_start, end)
    body_end = closing.start() if closing is not None else end
    return (body_start, body_end) if body_end > body_start else (start, end)


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


#: A sentence longer than this many times ``max_chars`` (a long run without punctuation)
#: is cut into pieces of at most ``max_chars``; shorter long sentences stay whole.
OVERLONG_FACTOR = 2


def bound_sentences(text: str, sentences: list[Span], max_chars: int) -> list[Span]:
    """``sentences`` with each one longer than ``OVERLONG_FACTOR × max_chars`` cut into
    pieces of at most ``max_chars`` characters at word boundaries (inside a single longer
    word: at ``max_chars``); each piece is trimmed, so it is still a verbatim slice."""
    limit = OVERLONG_FACTOR * max_chars
    bounded: list[Span] = []
    for start, end in sentences:
        if end - start <= limit:
            bounded.append((start, end))
            continue
        pos = start
        while pos < end:
            stop = min(end, pos + max_chars)
            if stop < end and not text[stop].isspace():
                space = max(text.rfind(" ", pos + 1, stop + 1), text.rfind("\t", pos + 1, stop + 1))
                if space > pos:
                    stop = space
            piece_end = stop
            while piece_end > pos and text[piece_end - 1].isspace():
                piece_end -= 1
            if piece_end > pos:
                bounded.append((pos, piece_end))
            pos = stop
            while pos < end and text[pos].isspace():
                pos += 1
    return bounded


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


#: An introduction line ("Actionable Steps to Stop the Cramps:") at most this long becomes the
#: context of every chunk of its list and is not a passage itself; a longer one stays in its
#: paragraph's passage and only its last sentence is the list's context.
INTRO_MAX_CHARS = 200


def _pack_list(items: list[list[list[Span]]], max_chars: int, min_chars: int
               ) -> list[list[Span]]:
    """Passages of consecutive list items: a short item (under ``min_chars``) joins its
    neighbour while the passage stays within ``max_chars``, a longer one stands alone (an
    item longer than ``max_chars`` is split at sentences). The last passage is never a lone
    short item left over from packing its neighbours: it joins them, or takes the previous
    passage's last item, when that fits within ``max_chars``."""
    units = [(i, group) for i, groups in enumerate(items) for group in groups]
    packed: list[list[tuple[int, list[Span]]]] = []

    def size(group: list[tuple[int, list[Span]]]) -> int:
        return group[-1][1][-1][1] - group[0][1][0][0]

    for unit in units:
        if packed:
            previous = packed[-1]
            small = size(previous) < min_chars or size([unit]) < min_chars
            if small and size([*previous, unit]) <= max_chars:
                previous.append(unit)
                continue
        packed.append([unit])

    def items_in(group: list[tuple[int, list[Span]]]) -> int:
        return len({i for i, _ in group})

    if len(packed) > 1 and items_in(packed[-1]) == 1:
        last, previous = packed[-1], packed[-2]
        if size(last) < min_chars:  # a longer item stands alone, as it would mid-list
            if size(previous + last) <= max_chars:
                packed[-2:] = [previous + last]
            else:
                item = previous[-1][0]
                moved = [u for u in previous if u[0] == item]
                kept = [u for u in previous if u[0] != item]
                if kept and size(moved + last) <= max_chars:
                    packed[-2:] = [kept, moved + last]
    return [[span for _, group in g for span in group] for g in packed]


def chunk_text(text: str, settings: ChunkSettings | None = None) -> list[Chunk]:
    """Cut ``text`` into passages; see the module docstring for the guarantees.

    Paragraph sentences are grouped into balanced passages; a list is packed into its own
    passages, each pointing at the line that introduces the list (its context, like a
    table row's header row); every table row is a passage.

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
    # pending: sentence groups of the current run of paragraphs, merged greedily
    pending: list[tuple[str, list[Span]]] = []
    last_text_line: Span | None = None
    # the current list: each item's sentence groups, and the line introducing it
    items: list[list[list[Span]]] = []
    intro: Span | None = None

    def flush_text() -> None:
        merged: list[tuple[str, list[Span]]] = []
        for kind, sents in pending:
            if merged:
                prev_kind, prev = merged[-1]
                size = sents[-1][1] - prev[0][0]
                prev_size = prev[-1][1] - prev[0][0]
                this_size = sents[-1][1] - sents[0][0]
                small = prev_size < min_chars or this_size < min_chars
                if small and size <= max_chars:
                    merged[-1] = (prev_kind, prev + sents)
                    continue
            merged.append((kind, list(sents)))
        for kind, sents in merged:
            chunks.append(Chunk(sents[0][0], sents[-1][1], kind, heading, None, tuple(sents)))
        pending.clear()

    def flush_list() -> None:
        nonlocal intro
        for sents in _pack_list(items, max_chars, min_chars):
            chunks.append(Chunk(sents[0][0], sents[-1][1], KIND_LIST, heading, intro,
                                tuple(sents)))
        items.clear()
        intro = None

    def flush() -> None:
        flush_list()
        flush_text()

    def take_intro() -> Span | None:
        """The line (or, for a long one, the sentence) introducing a list that starts."""
        if not pending or last_text_line is None or not _is_intro(text, pending[-1][1]):
            return None
        line_start, line_end = last_text_line
        if line_end - line_start > INTRO_MAX_CHARS:
            return pending[-1][1][-1]
        while pending and pending[-1][1][0][0] >= line_start:
            pending.pop()
        return last_text_line

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
        sentences = bound_sentences(text, split_sentences(text, line.start, line.end),
                                    max_chars)
        groups = _group_sentences(sentences, max_chars)
        if not groups:
            continue
        if line.kind == "list":
            if not items:
                intro = take_intro()
                flush_text()
            items.append(groups)
            continue
        flush_list()
        if _is_intro(text, sentences):
            flush_text()  # "… include:" starts a list
        pending.extend((KIND_TEXT, group) for group in groups)
        last_text_line = (line.start, line.end)
    flush()
    return chunks
