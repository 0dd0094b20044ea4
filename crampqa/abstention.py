"""Why crampqa abstains: the reason, in words a person can check.

The decision to abstain is the scorer's (or, in fast mode, the fusion confidence's); this
module only explains it, and only with statements that are true of the index: a word the
corpus never uses, or an amount asked for where the closest passages hold no number.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from crampqa.results import ABSTAIN_MESSAGE, NOT_ENGLISH_NOTE

_AMOUNT = re.compile(
    r"\b(how (many|much|long|often)|doses?|dosage|dosing|mg|milligrams?|mcg|micrograms?"
    r"|iu|grams?|ml|amount|quantity|per day|a day|daily (amount|intake)|normal range"
    r"|range|levels? should)\b",
    re.IGNORECASE,
)
_DIGIT = re.compile(r"\d")
#: a dose, intake or reference value: answered with a number, never in words alone (unlike
#: "how long" or "how many people", which the articles answer with "two weeks" or "half")
_DOSE = re.compile(
    r"\b(how much|doses?|dosage|dosing|mg|milligrams?|mcg|micrograms?|iu|grams?|ml"
    r"|per day|a day|daily (amount|intake)|normal range|range|levels? should)\b",
    re.IGNORECASE,
)
#: units say an amount is wanted; "never mention mg" would say less than "no amounts"
_UNITS = frozenset({"mg", "mcg", "iu", "ml", "g", "gram", "grams", "milligram", "milligrams",
                    "microgram", "micrograms", "dose", "doses", "dosage"})


@dataclass(frozen=True)
class AbstainReason:
    """Why a question was abstained on: a code for programs and a sentence for people."""

    code: str  # "unknown_terms" | "no_amounts" | "not_english" | "not_covered"
    message: str
    terms: tuple[str, ...] = ()


def asks_for_amount(question: str) -> bool:
    """Whether the question asks for a dose, number, duration or range."""
    return _AMOUNT.search(question) is not None


def asks_for_dose(question: str) -> bool:
    """Whether the question asks for a dose, a daily amount or a reference value."""
    return _DOSE.search(question) is not None


def has_number(text: str) -> bool:
    """Whether ``text`` holds a digit."""
    return _DIGIT.search(text) is not None


def _listed(words: Sequence[str]) -> str:
    quoted = [f"“{w}”" for w in words]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def abstain_reason(
    question: str,
    closest: Sequence[str],
    unknown_words: Callable[[str], list[str]],
    english: bool = True,
) -> AbstainReason:
    """The reason to give for abstaining on ``question``.

    ``closest`` are the texts of the closest passages (the weak matches shown);
    ``unknown_words`` returns the question's content words the corpus never uses
    (typos of corpus words excluded). A question that does not look English is told only
    that the sources are in English (every word of it would be "unknown", and "not
    covered" would be wrong: it may well be, in English).
    """
    if not english:
        return AbstainReason("not_english", NOT_ENGLISH_NOTE)
    # numbers and units say what is asked, not a subject the sources lack
    unknown = [w for w in unknown_words(question) if w not in _UNITS and not w.isdigit()]
    if unknown:
        return AbstainReason(
            "unknown_terms",
            f"{ABSTAIN_MESSAGE} They never mention {_listed(unknown[:3])}.",
            tuple(unknown),
        )
    if asks_for_amount(question) and not any(_DIGIT.search(t) for t in closest):
        return AbstainReason(
            "no_amounts",
            f"{ABSTAIN_MESSAGE} The closest passages give no amounts for this.",
        )
    return AbstainReason("not_covered", ABSTAIN_MESSAGE)
