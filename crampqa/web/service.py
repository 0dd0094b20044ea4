"""Answering for the web service: one parsed request type, one pool, one cache.

``GET /api/ask`` is parsed in one place, :func:`parse_ask`, for both the cached shortcut
and the endpoint; ``POST /api/ask`` bodies end in the same :class:`AskRequest`. The cache
key is built from that request, so a parameter added to it is part of the key at once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Mapping, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.datastructures import QueryParams

from crampqa.config import DEFAULT_K, MAX_K, check_k
from crampqa.engine import CrampQA, clean_question
from crampqa.errors import InputError
from crampqa.web.cache import AnswerCache, AnswerKey
from crampqa.web.live import LiveIndex

if TYPE_CHECKING:
    from pydantic import TypeAdapter

#: Parameters ``GET /api/ask`` understands; anything else is rejected.
ASK_PARAMS = frozenset({"q", "question", "k"})
#: The web service's message for a bad ``k`` (it does not repeat the value sent).
K_MESSAGE = f"k must be a whole number from 1 to {MAX_K}."
#: The question asked at start-up to warm every engine thread.
WARM_UP_QUESTION = "leg cramps at night"


def render_json(content: Any) -> bytes:
    """JSON bytes exactly as :class:`fastapi.responses.JSONResponse` renders ``content``."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class AskRequest:
    """One question to answer: the cleaned question and every parameter of the ask."""

    question: str
    k: int = DEFAULT_K

    @classmethod
    def of(cls, q: str | None, question: str | None, k: int = DEFAULT_K) -> AskRequest:
        """The request for ``q`` or ``question`` (exactly one of them) and ``k``."""
        try:
            k = check_k(k)
        except InputError:
            raise InputError(K_MESSAGE) from None
        if q is not None and question is not None:
            raise InputError("Give the question as 'q' or 'question', not both.")
        text = q if q is not None else question
        if text is None:
            raise InputError("The question is missing; send it as 'q', for example "
                             "/api/ask?q=why+do+my+calves+cramp+at+night.")
        return cls(clean_question(text), k)


_INT: TypeAdapter[int] | None = None


def _parse_int(text: str) -> int:
    """``text`` as a query-string integer, read as FastAPI reads an ``int`` parameter."""
    global _INT
    if _INT is None:
        from pydantic import TypeAdapter

        _INT = TypeAdapter(int)
    from pydantic import ValidationError

    try:
        return _INT.validate_python(text)
    except ValidationError:
        raise InputError(K_MESSAGE) from None


def check_params(params: QueryParams, allowed: Collection[str], use: str) -> None:
    """Raise :class:`InputError` for a parameter not in ``allowed`` (the message says to
    use ``use``) or one given more than once."""
    for name in params:
        if name not in allowed:
            raise InputError(f"Unknown parameter '{name}'; use {use}.")
        if len(params.getlist(name)) > 1:
            raise InputError(f"The parameter '{name}' was given more than once.")


def parse_ask(params: QueryParams | Mapping[str, str]) -> AskRequest:
    """The request a ``GET /api/ask`` query string makes; :class:`InputError` if unusable
    (an unknown or repeated parameter, a bad ``k``, a missing or unusable question)."""
    params = params if isinstance(params, QueryParams) else QueryParams(params)
    check_params(params, ASK_PARAMS, "'q' (or 'question') and 'k'")
    k_text = params.get("k")
    k = DEFAULT_K if k_text is None else _parse_int(k_text)
    return AskRequest.of(params.get("q"), params.get("question"), k)


class AnswerService:
    """Answers :class:`AskRequest` s on a small pool of engine threads, through the cache.

    The pool is first come, first served. The encoder (onnxruntime, one intra-op thread
    per call), FAISS and numpy release the GIL, so on N CPUs N asks run side by side; an
    ask only reads the opened index (tests/test_web.py checks that answers given side by
    side equal answers given one at a time). See docs/performance.md.
    """

    def __init__(self, qa: CrampQA, threads: int, cache: AnswerCache, *,
                 follow_index: bool = True) -> None:
        if threads < 1:
            raise InputError("The number of engine threads must be at least 1.")
        self.threads = threads
        self.cache = cache
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="crampqa-engine")
        #: the engine served now; with ``follow_index`` it moves to each rebuilt version
        self.live = LiveIndex(qa, opener=self._open_warm, on_switch=self._switched,
                              lease=follow_index)
        self.follow_index = follow_index

    @property
    def qa(self) -> CrampQA:
        """The engine of the index version served now."""
        return self.live.current

    def key(self, request: AskRequest, qa: CrampQA | None = None) -> AnswerKey:
        """Everything the answer depends on: the index version and the request."""
        return AnswerKey(str((qa or self.qa).data.folder), request)

    def _compute(self, key: AnswerKey) -> bytes:
        """Answer a claimed question on an engine thread and hand it to the cache.

        The ask runs on the version served when it starts, kept until it ends (a switch
        meanwhile lets it finish there)."""
        try:
            with self.live.use() as qa:
                body = render_json(qa.ask(key.request.question, k=key.request.k).to_dict())
                version = str(qa.data.folder)
        except BaseException as exc:
            self.cache.finish(key, None, exc)
            raise
        # stored only if answered by the version the key names (no switch in between)
        self.cache.finish(key, body, store=version == key.version)
        return body

    def _open_warm(self, folder: Path) -> CrampQA:
        """Open a new version for serving: every file hashed, the encoder warmed up."""
        qa = CrampQA.open_version(folder, corpus_dir=self.qa.corpus_dir, verify_full=True,
                                  search=self.qa.search)
        qa.ask(WARM_UP_QUESTION, k=1)
        return qa

    def _switched(self, qa: CrampQA) -> None:
        """A new version is served: answers of the old one go."""
        self.cache.use_version(str(qa.data.folder))

    async def answer(self, request: AskRequest) -> bytes:
        """The JSON of the answer: from the cache, shared with an identical request in
        flight, or computed on an engine thread (the event loop only awaits it)."""
        key = self.key(request)
        claimed = self.cache.claim(key)
        if isinstance(claimed, bytes):
            return claimed
        pending: Future[bytes]
        if claimed is None:
            try:
                pending = self.pool.submit(self._compute, key)
            except BaseException as exc:
                self.cache.finish(key, None, exc)
                raise
        else:
            pending = claimed
        # shielded: a client that goes away does not cancel work others may be waiting for
        return await asyncio.shield(asyncio.wrap_future(pending))

    def cached(self, scope: MutableMapping[str, Any]) -> bytes | None:
        """The cached answer of a well-formed ``GET /api/ask``, or None (not cached, or
        not usable: the endpoint then parses it again and refuses it)."""
        if scope.get("method") != "GET" or scope.get("path") != "/api/ask":
            return None
        try:
            request = parse_ask(QueryParams(scope.get("query_string", b"")))
        except InputError:
            return None
        return self.cache.lookup(self.key(request))

    def warm_up(self) -> None:
        """Start every engine thread with one ask each (submitted together)."""
        warm = [self.pool.submit(self.qa.ask, WARM_UP_QUESTION, k=1)
                for _ in range(self.threads)]
        for done in warm:
            done.result()

    def start(self) -> None:
        """Start following the index (when asked to)."""
        if self.follow_index:
            self.live.start()

    def close(self) -> None:
        """Stop following the index and release the served version."""
        self.live.close()
