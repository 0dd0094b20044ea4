"""What a question returns: typed, JSON-ready results."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

DISCLAIMER = (
    "These are verbatim excerpts from the sources, not medical advice. "
    "Talk to a healthcare professional about your symptoms."
)
ABSTAIN_MESSAGE = "These sources do not cover this question."


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (highlights as lists of offsets)."""
        data = asdict(self)
        data["highlights"] = [[h.start, h.end] for h in self.highlights]
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

    def to_dict(self) -> dict[str, Any]:
        """The JSON object printed by ``crampqa ask --json`` and served by the web API."""
        return {
            "question": self.question,
            "abstained": self.abstained,
            "message": self.message,
            "reason": self.reason,
            "confidence": round(self.confidence, 6),
            "ranked_by": self.ranked_by,
            "passages": [p.to_dict() for p in self.passages],
            "disclaimer": self.disclaimer,
        }
