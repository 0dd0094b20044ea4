"""Reading a passage in its article: what `crampqa show` and the page's article view use.

A source ID is ``DOC_ID#START-END`` (document offsets). Everything here is still a verbatim
slice of the document's decoded text, as the index stores it; nothing is fetched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crampqa.errors import InputError, UnknownSourceError

if TYPE_CHECKING:
    from crampqa.engine import CrampQA

_SOURCE_ID = re.compile(r"^(?P<doc>.+?)(?:#(?P<start>\d+)-(?P<end>\d+))?$")


@dataclass(frozen=True)
class PassageView:
    """A passage (or a whole article) located in its document."""

    source_id: str
    doc_id: str
    title: str
    url: str
    document: str  # the document's whole decoded text
    start: int  # the passage: document[start:end]
    end: int
    around_start: int  # the surrounding paragraph: document[around_start:around_end]
    around_end: int
    heading: str | None = None
    heading_start: int | None = None
    heading_end: int | None = None
    #: every section heading of the document (without Markdown markers), in order
    headings: tuple[tuple[int, int], ...] = ()

    @property
    def text(self) -> str:
        """The passage, verbatim."""
        return self.document[self.start : self.end]

    @property
    def around(self) -> str:
        """The passage's surrounding paragraph, verbatim."""
        return self.document[self.around_start : self.around_end]

    def to_dict(self, full: bool = False) -> dict[str, Any]:
        """JSON-ready; ``full`` adds the whole document text as ``document``."""
        data: dict[str, Any] = {
            "source_id": self.source_id, "doc_id": self.doc_id, "title": self.title,
            "url": self.url, "start": self.start, "end": self.end, "text": self.text,
            "heading": self.heading, "heading_start": self.heading_start,
            "heading_end": self.heading_end, "around": self.around,
            "around_start": self.around_start, "around_end": self.around_end,
        }
        if full:
            data["document"] = self.document
            data["headings"] = [list(span) for span in self.headings]
        return data


def parse_source_id(source_id: str) -> tuple[str, int | None, int | None]:
    """``(doc_id, start, end)`` of ``DOC_ID#START-END``; a bare ``DOC_ID`` gives Nones."""
    match = _SOURCE_ID.match(source_id.strip())
    if not source_id.strip() or match is None:
        raise InputError(f"'{source_id}' is not a source ID; source IDs look like "
                         "000_153f9343c5352d90#6779-6991 (see `crampqa sources`).")
    start, end = match.group("start"), match.group("end")
    if start is None or end is None:
        return match.group("doc"), None, None
    return match.group("doc"), int(start), int(end)


def _line_start(text: str, pos: int) -> int:
    return text.rfind("\n", 0, pos) + 1


def _line_end(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end < 0 else end


def locate(qa: CrampQA, source_id: str) -> PassageView:
    """The passage ``source_id`` names, with its surrounding paragraph, section heading and
    article title. Raises :class:`UnknownSourceError` for an unknown document or offsets
    outside it."""
    doc_id, start, end = parse_source_id(source_id)
    data = qa.data
    if doc_id not in data.doc_index:
        raise UnknownSourceError(f"No source '{doc_id}' in this index; `crampqa sources` "
                                 "lists the document IDs.")
    d = data.doc_index[doc_id]
    doc = data.documents[d]
    text = doc.text
    if start is None or end is None:
        start, end = 0, len(text)
    if not 0 <= start < end <= len(text):
        raise UnknownSourceError(f"The offsets {start}-{end} lie outside '{doc_id}' "
                                 f"({len(text)} characters).")
    table = data.passages
    rows = table.rows_of(d)
    spans = {row: table.span(row) for row in rows}

    def heading_of(row: int) -> tuple[int, int] | None:
        excerpt = table.shown_heading(row)
        return (excerpt.start, excerpt.end) if excerpt is not None else None

    heading: tuple[int, int] | None = None
    exact = [r for r in rows if spans[r] == (start, end)]
    inside = [r for r in rows if spans[r][0] <= start < spans[r][1]]
    before = [r for r in rows if spans[r][0] <= start]
    for found in (exact, inside, before[-1:]):
        if found:
            heading = heading_of(found[0])
            break
    around_start, around_end = _line_start(text, start), _line_end(text, end)
    if (around_start, around_end) == (start, end):  # a whole line: add its neighbours
        floor = heading[1] if heading else 0
        if around_start > 0:
            previous = _line_start(text, max(around_start - 1, 0))
            if previous >= floor and text[previous : around_start - 1].strip():
                around_start = previous
        if around_end < len(text):
            following = _line_end(text, around_end + 1)
            same = [r for r in rows if around_end < spans[r][0] < following
                    and (heading is None or heading_of(r) == heading)]
            if same and text[around_end + 1 : following].strip():
                around_end = following
    return PassageView(
        source_id=f"{doc_id}#{start}-{end}", doc_id=doc_id, title=doc.title, url=doc.url,
        document=text, start=start, end=end, around_start=around_start,
        around_end=around_end,
        heading=text[heading[0] : heading[1]] if heading else None,
        heading_start=heading[0] if heading else None,
        heading_end=heading[1] if heading else None,
        headings=tuple(sorted({span for row in rows if (span := heading_of(row))})),
    )
