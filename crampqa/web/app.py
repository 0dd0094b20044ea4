"""The crampqa web service: a JSON API and one static page over an opened :class:`CrampQA`.

The index is opened by the caller and passed to :func:`create_app`; the service then
follows the index: a rebuilt version is loaded beside the one served and switched in
(:mod:`crampqa.web.live`), and each ask uses the version served when it started. Errors
reach clients only as ``{"error": ..., "message": ...}``: :func:`error_response` is the
one place a :class:`CrampQAError` becomes an HTTP response, and anything unexpected
becomes a generic 500 without a traceback.

Questions are answered in arrival order by a small pool of engine threads (one per CPU
by default; the query encoder and FAISS release the GIL, and an ask only reads the opened
index); the event loop only validates requests and sends bytes, so it is never blocked by
an ask. The JSON of each answer is rendered once and kept in a bounded
:class:`AnswerCache` keyed by index version and :class:`AskRequest` (cleaned question and
``k``), so a repeated question costs no engine time; identical questions that arrive while
one is being answered share that answer. :class:`AnswerService` holds the pool and the
cache; this module holds the HTTP side.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from crampqa.config import DEFAULT_K, MAX_K, MAX_QUESTION_CHARS
from crampqa.engine import CrampQA
from crampqa.errors import BadHost, CrampQAError, InputError, RequestTooLarge
from crampqa.web.cache import DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, AnswerCache
from crampqa.web.service import (
    ASK_PARAMS,
    K_MESSAGE,
    AnswerService,
    AskRequest,
    check_params,
    parse_ask,
    render_json,
)

__all__ = ["ASK_PARAMS", "AnswerService", "AskRequest", "create_app", "parse_ask",
           "render_json"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: Host names accepted by default (the service is meant for this machine only).
LOOPBACK_HOSTS: frozenset[str] = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
#: The largest request body accepted; a question is at most MAX_QUESTION_CHARS characters.
MAX_BODY_BYTES = 64 * 1024
#: Most engine threads started by default, whatever the number of CPUs.
MAX_DEFAULT_ENGINE_THREADS = 8

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}
INTERNAL_ERROR = {
    "error": "internal_error",
    "message": "Something went wrong on the server; the details are in the server's log.",
}
HTTP_ERROR_CODES = {404: "not_found", 405: "method_not_allowed"}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ErrorBody(BaseModel):
    """The JSON shape of every error response."""

    error: str = Field(examples=["bad_input"])
    message: str = Field(examples=["The question is empty; ask something like '...'."])


class AskBody(BaseModel):
    """``POST /api/ask`` body: the question as ``q`` or ``question``, and ``k``."""

    model_config = ConfigDict(extra="forbid")

    q: str | None = Field(None, description=f"The question (at most {MAX_QUESTION_CHARS} "
                          "characters).", examples=["why do my calves cramp at night"])
    question: str | None = Field(None, description="Same as `q`; give one of the two.")
    # the range is checked by AskRequest, as for GET; the schema only documents it
    k: StrictInt = Field(DEFAULT_K, description="How many passages to return.",
                         json_schema_extra={"minimum": 1, "maximum": MAX_K})


def error_response(exc: CrampQAError) -> JSONResponse:
    """The one conversion of a crampqa error into an HTTP response."""
    return JSONResponse(exc.to_dict(), status_code=exc.http_status,
                        headers={"cache-control": "no-store"})


def _validation_message(exc: RequestValidationError) -> str:
    """A short, input-free message for FastAPI's validation errors."""
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ()) if part not in ("query", "body")]
        kind = str(err.get("type", ""))
        if not loc or kind == "json_invalid":
            return ('The request body must be a JSON object like '
                    '{"q": "why do my calves cramp at night", "k": 3}.')
        name = loc[-1]
        if kind == "extra_forbidden":
            return f"Unknown field '{name}'; use 'q' (or 'question') and 'k'."
        if name == "k":
            return K_MESSAGE
        if name in ("q", "question"):
            return f"'{name}' must be text of at most {MAX_QUESTION_CHARS} characters."
        return f"{name}: {err.get('msg', 'invalid value')}."
    return "The request is not valid."


def _hostname(host: str) -> str:
    """The host part of a Host header, lower-cased, without the port."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


#: Looks a request up in the answer cache: the stored answer, or None (then the request
#: takes the normal route, which validates it and answers or refuses it).
CachedAnswer = Callable[[Scope], "bytes | None"]


class GuardMiddleware:
    """Pure ASGI middleware: Host check, request size limit and security headers; and
    answers that are already cached, sent without the framework's routing (the JSON is
    the same bytes, with the same headers, as the endpoint would send)."""

    def __init__(self, app: ASGIApp, allowed_hosts: Collection[str] | None,
                 cached_answer: CachedAnswer | None = None) -> None:
        self.app = app
        self.allowed = {h.lower() for h in allowed_hosts} if allowed_hosts is not None else None
        self.cached_answer = cached_answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request, then pass it on with headers added to the response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path = str(scope.get("path", ""))
        csp = PAGE_CSP
        # a response sent before the whole body arrived closes the connection: else a
        # client that never finishes its body (or sends more than was accepted) keeps the
        # socket, as nothing reads or times out the rest of that request
        length = headers.get("content-length")
        body_done = length in (None, "0") and "transfer-encoding" not in headers
        receive_body = receive

        async def receive_tracked() -> Message:
            nonlocal body_done
            message = await receive_body()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        receive = receive_tracked

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                if not body_done:
                    out["connection"] = "close"
                for name, value in SECURITY_HEADERS.items():
                    out.setdefault(name, value)
                out.setdefault("content-security-policy", csp)
                if path.startswith("/api/"):
                    out.setdefault("cache-control", "no-store")
            await send(message)

        problem: CrampQAError | None = None
        if self.allowed is not None and _hostname(headers.get("host", "")) not in self.allowed:
            problem = BadHost("This service only answers requests for this machine "
                              "(http://127.0.0.1); check the address.")
        if problem is None and length is not None and (
            not length.isdigit() or int(length) > MAX_BODY_BYTES
        ):
            problem = RequestTooLarge(f"The request body is over {MAX_BODY_BYTES} bytes.")
        if problem is None and "chunked" in headers.get("transfer-encoding", "").lower():
            body = bytearray()
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                body += message.get("body", b"")
                if len(body) > MAX_BODY_BYTES:
                    problem = RequestTooLarge(f"The request body is over {MAX_BODY_BYTES} "
                                              "bytes.")
                    break
                if not message.get("more_body", False):
                    receive = _replay(bytes(body), receive)
                    break
        if problem is not None:
            await error_response(problem)(scope, receive, send_with_headers)
            return
        if self.cached_answer is not None:
            cached = self.cached_answer(scope)
            if cached is not None:
                await Response(cached, media_type="application/json")(scope, receive,
                                                                     send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields an already-read body once, then defers to the original."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def usable_cpus(cgroup_cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process may use: its affinity, lowered by a cgroup v2 CPU quota
    (a container limited to 2 CPUs on a large host counts 2)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = cgroup_cpu_max.read_text(encoding="ascii").split()[:2]
        if quota != "max" and int(period) > 0:
            cpus = min(cpus, max(1, -(-int(quota) // int(period))))  # round up
    except (OSError, ValueError):  # no cgroup v2 limit to read
        pass
    return max(1, cpus)


def default_engine_threads() -> int:
    """One engine thread per usable CPU, at most :data:`MAX_DEFAULT_ENGINE_THREADS`."""
    return min(usable_cpus(), MAX_DEFAULT_ENGINE_THREADS)


def create_app(
    qa: CrampQA,
    *,
    allowed_hosts: Collection[str] | None = LOOPBACK_HOSTS,
    warm_up: bool = True,
    cache_entries: int = DEFAULT_MAX_ENTRIES,
    cache_bytes: int = DEFAULT_MAX_BYTES,
    engine_threads: int | None = None,
    follow_index: bool = True,
) -> FastAPI:
    """The FastAPI app serving ``qa`` (already opened): JSON API, page and article view.

    ``allowed_hosts`` lists the Host names answered (loopback by default; ``None`` answers
    any). With ``warm_up`` the query encoder runs once at start-up, so the first question
    is as fast as the rest. ``cache_entries`` and ``cache_bytes`` bound the answer cache
    (``cache_entries=0`` stores nothing). ``engine_threads`` questions are answered at
    once (default: :func:`default_engine_threads`). With ``follow_index`` the service
    moves to each new complete version of the index (see :mod:`crampqa.web.live`) and
    holds a lease on the version it serves, so that builds do not prune it.
    """
    threads = default_engine_threads() if engine_threads is None else engine_threads
    service = AnswerService(qa, threads, AnswerCache(cache_entries, cache_bytes),
                            follow_index=follow_index)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if warm_up:
            service.warm_up()
        service.start()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="crampqa",
        version="0.1.0",
        summary="Verbatim, source-cited passages about leg cramps. Not medical advice.",
        description=(
            "Every passage is an exact slice `document_text[start:end]` of a source article, "
            "with its source ID. When the sources do not cover a question the answer says so "
            "(`abstained: true`) and the closest passages are marked `weak`. Errors are "
            '`{"error": ..., "message": ...}`.'
        ),
        lifespan=lifespan,
        # no Swagger UI page: it loads from a CDN; the schema is at /openapi.json
        docs_url=None,
        redoc_url=None,
        debug=False,
    )
    app.state.service = service
    app.state.live = service.live
    app.state.answer_cache = service.cache
    app.state.engine_threads = threads
    app.add_middleware(GuardMiddleware, allowed_hosts=allowed_hosts,
                       cached_answer=service.cached if cache_entries > 0 else None)
    _add_error_handlers(app)
    _add_routes(app, service)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error reaches the client as ``{"error": ..., "message": ...}``."""

    @app.exception_handler(CrampQAError)
    async def crampqa_error(request: Request, exc: CrampQAError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(InputError(_validation_message(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_ERROR_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else "The request failed."
        return JSONResponse({"error": code, "message": message}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(INTERNAL_ERROR, status_code=500)


#: ``GET /api/ask`` reads its query string itself (:func:`parse_ask`); this documents it.
ASK_GET_PARAMETERS: list[dict[str, Any]] = [
    {"name": "q", "in": "query", "required": False, "schema": {"type": "string"},
     "description": f"The question, at most {MAX_QUESTION_CHARS} characters."},
    {"name": "question", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "Same as `q`."},
    {"name": "k", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": DEFAULT_K},
     "description": "How many passages."},
]


def _add_routes(app: FastAPI, service: AnswerService) -> None:
    """The JSON API, the page and its static files."""
    errors: dict[int | str, dict[str, Any]] = {
        422: {"model": ErrorBody, "description": "Unusable question or parameter."},
    }

    async def answer(request: AskRequest) -> Response:
        return Response(await service.answer(request), media_type="application/json")

    @app.get("/api/ask", tags=["ask"], responses=errors,
             openapi_extra={"parameters": ASK_GET_PARAMETERS})
    async def ask_get(request: Request) -> Response:
        """The top ``k`` passages for a question, verbatim, or an abstention.

        The body is exactly the object printed by ``crampqa ask --json``.
        """
        return await answer(parse_ask(request.query_params))

    @app.post("/api/ask", tags=["ask"], responses=errors)
    async def ask_post(body: Annotated[AskBody, Body()]) -> Response:
        """Same as ``GET /api/ask``, with a JSON body ``{"q": ..., "k": ...}``."""
        return await answer(AskRequest.of(body.q, body.question, body.k))

    @app.get("/api/health", tags=["service"])
    def health() -> dict[str, Any]:
        """Service status, and the size and version (folder name) of the index served."""
        qa = service.qa
        return {
            "status": "ok",
            "documents": len(qa.data.documents),
            "passages": len(qa.data.passages),
            "index": qa.data.folder.name,
            "disclaimer": qa.disclaimer,
        }

    @app.get("/api/sources", tags=["service"])
    def sources() -> list[dict[str, Any]]:
        """The indexed documents: ID, title, path, URL and size (as ``crampqa sources``)."""
        return service.qa.sources()

    @app.get("/api/article", tags=["service"], responses={
        404: {"model": ErrorBody, "description": "Unknown source."}})
    def article(
        request: Request,
        source: Annotated[str, Query(description="A source ID, e.g. "
                                     "000_153f9343c5352d90#6779-6991.", max_length=300)],
    ) -> dict[str, Any]:
        """A passage located in its article: the whole document text (``document``), the
        passage's offsets, its section heading, the article's title and URL, and the
        corpus's note (``disclaimer``)."""
        from crampqa.articles import locate

        check_params(request.query_params, ("source",), "'source'")
        return {**locate(service.qa, source).to_dict(full=True),
                "disclaimer": service.qa.disclaimer}

    @app.api_route("/article", methods=["GET", "HEAD"], include_in_schema=False)
    def article_page() -> Response:
        """The article view (static HTML; /static/article.js fetches /api/article)."""
        return FileResponse(STATIC_DIR / "article.html",
                            media_type="text/html; charset=utf-8")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def page() -> Response:
        """The single page (static HTML; its script lives in /static/app.js)."""
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
