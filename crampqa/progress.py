"""Progress of long work (index builds, evaluations) on standard error.

A ``Progress`` is a callable ``(stage, done, total)``. Those made here also have a
``notice(text)`` method: a build says what it is about to do, and how long that usually
takes, before embedding more than :data:`NOTICE_DOCUMENTS` documents
(:func:`announce`). :class:`ProgressLines` is the plain form (not a terminal: CI logs,
``nohup``, ``--json`` piped); the CLI shows a rich bar at a terminal instead.
"""

from __future__ import annotations

import sys
import time
from typing import Literal

from crampqa.config import Progress

#: Seconds between two progress lines when standard error is not a terminal.
PROGRESS_INTERVAL_S = 5.0
#: A build embedding more documents than this says first what it will do.
NOTICE_DOCUMENTS = 300
#: Documents a build embeds per second and usable CPU (crampqa's whole build, MedQuAD's
#: documents of about 200 words: 11.8 documents/s on the quiet reference 2-CPU machine,
#: benchmarks/bench_medquad.py, docs/performance.md). Only for the estimate of :func:`announce`.
DOCUMENTS_PER_S_PER_CPU = 5.9


def _stderr(message: str) -> None:
    """One unwrapped line on standard error, control characters made visible."""
    from crampqa.terminal import visible

    print(visible(message, newlines=False), file=sys.stderr, flush=True)


def duration(seconds: float) -> str:
    """A rough, readable duration: "about 40 seconds", "about 12 minutes"."""
    if seconds < 90:
        return f"about {max(10, round(seconds, -1)):.0f} seconds"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60):.0f} minutes"
    return f"about {seconds / 3600:.1f} hours"


def announce(progress: Progress | None, documents: int, engine: str = "here",
             what: str = "passages, sentences and titles",
             share: float = 1.0) -> None:
    """Before embedding ``documents`` documents: say so, with the usual time, through
    ``progress.notice`` (when it has one) if there are more than :data:`NOTICE_DOCUMENTS`.
    ``share``: the part of a whole build's embedding that ``what`` is."""
    notice = getattr(progress, "notice", None)
    if notice is None or documents <= NOTICE_DOCUMENTS:
        return
    from crampqa.embedding import build_threads

    cpus = build_threads()
    rate = DOCUMENTS_PER_S_PER_CPU * cpus / max(share, 1e-3)
    usual = duration(documents / rate)
    notice(f"Embedding {documents:,} documents {engine}: {what}. That usually takes {usual} "
           f"on {cpus} CPU(s) (about {rate:.0f} documents/s; longer for long documents or "
           "on a busy machine). Progress follows.")


class ProgressLines:
    """Progress as plain lines on stderr: a line with done/total, rate and ETA every
    :data:`PROGRESS_INTERVAL_S` seconds per stage, never more often, and one when a stage
    of more than one step finishes."""

    def __init__(self, interval: float | None = None) -> None:
        self.clock = time.monotonic
        self.interval = PROGRESS_INTERVAL_S if interval is None else interval
        self.started: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = self.clock()
        started = self.started.setdefault(stage, now)
        if now - self.last.get(stage, started) < self.interval:
            return
        self.last[stage] = now
        elapsed = max(now - started, 1e-9)
        rate = done / elapsed
        eta = (total - done) / rate if rate > 0 and total >= done else None
        eta_text = f"ETA {int(eta) // 60}:{int(eta) % 60:02d}" if eta is not None else "ETA ?"
        percent = f" ({100 * done / total:.0f}%)" if total > 0 else ""
        _stderr(f"{stage}: {done}/{total}{percent}, {rate:,.1f}/s, {eta_text}")

    def notice(self, text: str) -> None:
        """A line saying what is about to happen."""
        _stderr(text)


def default_progress(progress: Progress | Literal[False] | None) -> Progress | None:
    """The Python API's progress: ``None`` (the default) reports on stderr as
    :class:`ProgressLines` (nothing for work of a few seconds), ``False`` reports nothing,
    and a callable is used as given."""
    if progress is False:
        return None
    return ProgressLines() if progress is None else progress
