"""What a question returns: typed, JSON-ready results."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

DISCLAIMER = (
    "These are verbatim excerpts from the sources, not medical advice. "
    "Talk to a healthcare professional about your symptoms."
)
ABSTAIN_MESSAGE = "These sources do not cover this question."
NOT_ENGLISH_NOTE = "The sources are in English; try asking the question in English."


@dataclass(frozen=True)
class Highlight:
    """A span of the document (absolute offsets) that best answers the question."""

    start: int
    end: int


@dataclass(frozen=True)
class RankedPassage:
    """One passage, shown verbatim: ``text == document_text[start:end]``."""

    rank: int
    doc_id: str
    source_id: str
    title: str
    start: int
    end: int
    score: float
    text: str
    kind: str = "text"
    highlights: tuple[Highlight, ...] = ()
    heading: str | None = None
    heading_start: int | None = None
    heading_end: int | None = None
    context: str | None = None  # a table row's header row, itself verbatim
    context_start: int | None = None
    context_end: int | None = None
    weak: bool = False  # True when the question was abstained on
    #: the answer scorer's probability that this passage answers the question (None in
    #: the fast mode); ``score`` is this probability when the scorer ranked the passage
    probability: float | None = None
    url: str = ""  # the article's address, where sources.json gives one
    #: how well it matches, in words: "strong", "partial" or "weak" (set by the engine,
    #: from :func:`crampqa.presentation.strength`; empty on a passage made by hand)
    strength: str = ""

    @property
    def cells(self) -> list[dict[str, Any]]:
        """A table row's cells, each with its column: ``column``/``column_start``/
        ``column_end`` (a header cell) and ``value``/``start``/``end`` (the row's cell), all
        document offsets of verbatim slices. Empty for other passages."""
        if self.kind != "table_row" or self.context is None or self.context_start is None:
            return []
        from crampqa.chunking import row_cells

        cells = []
        for header, value in row_cells(self.context, self.context_start, self.text,
                                       self.start):
            cells.append({
                "column": None if header is None else
                self.context[header[0] - self.context_start : header[1] - self.context_start],
                "column_start": None if header is None else header[0],
                "column_end": None if header is None else header[1],
                "value": self.text[value[0] - self.start : value[1] - self.start],
                "start": value[0],
                "end": value[1],
            })
        return cells

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (highlights as lists of offsets; a table row's cells)."""
        data = asdict(self)
        data["highlights"] = [[h.start, h.end] for h in self.highlights]
        del data["strength"]  # Answer.to_dict puts it last
        data["cells"] = self.cells
        return data


@dataclass(frozen=True)
class Answer:
    """The passages for one question, or an abstention with the closest weak matches."""

    question: str
    abstained: bool
    passages: list[RankedPassage] = field(default_factory=list)
    confidence: float = 0.0
    message: str | None = None
    #: why it abstained: "unknown_terms", "no_amounts" or "not_covered" (None: answered)
    reason: str | None = None
    #: what ordered the passages: the answer scorer's name and hash, or "fusion"
    ranked_by: str | None = None
    disclaimer: str = DISCLAIMER
    note: str | None = None  # e.g. that the sources are in English, for another language

    def to_dict(self) -> dict[str, Any]:
        """The JSON object printed by ``crampqa ask --json`` and served by the web API.

        Each passage also carries its ``strength`` in words (strong, partial or weak; see
        :func:`crampqa.presentation.strength`)."""
        from crampqa.presentation import strength

        passages = []
        for p in self.passages:
            item = p.to_dict()
            item["strength"] = p.strength or strength(p, self)
            passages.append(item)
        return {
            "question": self.question,
            "abstained": self.abstained,
            "message": self.message,
            "reason": self.reason,
            "note": self.note,
            "confidence": round(self.confidence, 6),
            "ranked_by": self.ranked_by,
            "passages": passages,
            "disclaimer": self.disclaimer,
        }


#: Common words of other languages written in the Latin alphabet (Spanish, French,
#: German, Italian, Portuguese, Dutch) that are not English words.
_FOREIGN_WORDS = frozenset("""
por qué que tengo las los el la una del con para cuando piernas noche calambres es y de en
pourquoi j'ai les des une est dans avec pour quand jambes nuit crampes je ai mes et du au
warum ich habe der das und nicht mit wenn beine nacht krämpfe ist ein eine mein meine
perché ho gli della nelle quando gambe notte crampi il di che sono
porque tenho não com quando pernas noite cãibras uma meu minha
waarom ik heb het een wanneer benen nacht krampen mijn
""".split())
_ENGLISH_WORDS = frozenset("""
the a an and or of to in on at is are was do does did my i me you your it why what how
which when can could should with for from by not no at night leg legs cramp cramps calf
""".split())


def looks_not_english(question: str) -> bool:
    """True when ``question`` is most likely not English: mostly letters of another script,
    or more common words of another language than of English."""
    letters = [ch for ch in question if ch.isalpha()]
    if not letters:
        return False
    if sum(1 for ch in letters if not ch.isascii() and not "à" <= ch.lower() <= "ÿ") > \
            len(letters) / 2:
        return True
    words = [w.strip("¿?¡!.,;:'\"()").lower() for w in question.split()]
    foreign = sum(1 for w in words if w in _FOREIGN_WORDS and w not in _ENGLISH_WORDS)
    english = sum(1 for w in words if w in _ENGLISH_WORDS)
    return foreign >= 2 and foreign > english
