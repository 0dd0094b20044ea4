"""The web service (`crampqa serve`): JSON API, error shapes, headers, page, and one browser run."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from crampqa import CrampQA
from crampqa.config import MAX_K, MAX_QUESTION_CHARS, PROJECT_ROOT
from crampqa.errors import InputError
from crampqa.results import ABSTAIN_MESSAGE, DISCLAIMER
from crampqa.web.app import (
    INTERNAL_ERROR,
    MAX_DEFAULT_ENGINE_THREADS,
    STATIC_DIR,
    create_app,
    default_engine_threads,
    render_json,
    usable_cpus,
)
from crampqa.web.cache import AnswerCache, AnswerKey
from crampqa.web.launch import ServerStartError, running_server
from crampqa.web.service import AskRequest
from tests.conftest import CHROMIUM_ARGS, CORPUS, FakeEmbedder, chromium_or_skip

BASE = "http://127.0.0.1:8765"
QUESTION = "why do my calves cramp at night"


@pytest.fixture(scope="module")
def client(real_qa: CrampQA) -> Iterator[TestClient]:
    """A client of the app over the session's real index (start-up and warm-up included)."""
    with TestClient(create_app(real_qa), base_url=BASE) as test_client:
        yield test_client


def assert_clean_error(response: httpx.Response, status: int, code: str = "bad_input") -> str:
    """The response is a JSON error of the documented shape, with no traceback in it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == code
    assert body["message"] and "\n" not in body["message"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    return str(body["message"])


# ---- asking ---------------------------------------------------------------------------


def test_get_ask_returns_exactly_the_engine_answer(client: TestClient, real_qa: CrampQA) -> None:
    response = client.get("/api/ask", params={"q": QUESTION, "k": 4})
    assert response.status_code == 200
    assert response.json() == real_qa.ask(QUESTION, k=4).to_dict()
    assert response.headers["cache-control"] == "no-store"


def test_post_ask_accepts_q_or_question(client: TestClient, real_qa: CrampQA) -> None:
    expected = real_qa.ask("which blood test shows my real magnesium level", k=2).to_dict()
    for key in ("q", "question"):
        response = client.post("/api/ask", json={key: expected["question"], "k": 2})
        assert response.status_code == 200
        assert response.json() == expected
    default_k = client.post("/api/ask", json={"q": QUESTION}).json()
    assert default_k == real_qa.ask(QUESTION).to_dict()


def test_off_topic_question_matches_the_engine(client: TestClient, real_qa: CrampQA) -> None:
    """The API's answer carries the engine's own values (its Answer's fields, read
    directly, not through the serialiser the API uses)."""
    question = "how do I replace the chain on a mountain bike"
    data = client.get("/api/ask", params={"q": question}).json()
    answer = real_qa.ask(question)
    assert answer.abstained and data["abstained"] is True
    assert data["question"] == answer.question == question
    assert data["message"] == answer.message and answer.message.startswith(ABSTAIN_MESSAGE)
    assert data["reason"] == answer.reason is not None
    assert data["ranked_by"] == answer.ranked_by
    assert data["confidence"] == pytest.approx(answer.confidence, abs=1e-6)
    assert data["disclaimer"] == answer.disclaimer == DISCLAIMER
    assert len(data["passages"]) == len(answer.passages) == 3
    for got, p in zip(data["passages"], answer.passages, strict=True):
        assert (got["rank"], got["doc_id"], got["source_id"], got["start"], got["end"],
                got["text"], got["title"]) == (p.rank, p.doc_id, p.source_id, p.start,
                                               p.end, p.text, p.title)
        assert got["text"] == real_qa.document_text(p.doc_id)[p.start:p.end]
        assert got["score"] == pytest.approx(p.score, abs=1e-6)
        assert got["probability"] == pytest.approx(p.probability, abs=1e-6)
        assert got["highlights"] == [[h.start, h.end] for h in p.highlights]
        assert got["weak"] is True and p.weak
        assert got["strength"] == "weak"  # every passage of an abstention


def test_passages_are_verbatim_slices(client: TestClient, real_qa: CrampQA) -> None:
    data = client.get("/api/ask", params={"q": "magnesium and vitamin D", "k": 6}).json()
    assert data["passages"]
    for p in data["passages"]:
        text = real_qa.document_text(p["doc_id"])
        assert p["text"] == text[p["start"] : p["end"]]
        assert p["source_id"] == f"{p['doc_id']}#{p['start']}-{p['end']}"
        for start, end in p["highlights"]:
            assert p["start"] <= start < end <= p["end"]
        if p["heading"] is not None:
            assert p["heading"] == text[p["heading_start"] : p["heading_end"]]
    assert data["disclaimer"] == DISCLAIMER


# ---- input limits and errors ----------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"q": "x" * (MAX_QUESTION_CHARS + 1)}, str(MAX_QUESTION_CHARS)),
        ({"q": ""}, "empty"),
        ({"q": "   \t  "}, "empty"),
        ({}, "missing"),
        ({"q": QUESTION, "debug": "1"}, "Unknown parameter 'debug'"),
        ({"q": QUESTION, "k": 0}, f"1 to {MAX_K}"),
        ({"q": QUESTION, "k": MAX_K + 1}, f"1 to {MAX_K}"),
        ({"q": QUESTION, "k": "three"}, f"1 to {MAX_K}"),
        ({"q": QUESTION, "question": QUESTION}, "not both"),
    ],
)
def test_get_ask_rejects_bad_input(
    client: TestClient, params: dict[str, Any], needle: str
) -> None:
    message = assert_clean_error(client.get("/api/ask", params=params), 422)
    assert needle in message


def test_repeated_parameter_is_rejected(client: TestClient) -> None:
    response = client.get(f"/api/ask?q={QUESTION}&q=magnesium")
    assert "more than once" in assert_clean_error(response, 422)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"q": "y" * (MAX_QUESTION_CHARS + 1)}, str(MAX_QUESTION_CHARS)),
        ({"q": ""}, "empty"),
        ({"question": QUESTION, "verbose": True}, "Unknown field 'verbose'"),
        ({"q": QUESTION, "k": 0}, f"1 to {MAX_K}"),
        ({"q": QUESTION, "k": "3"}, f"1 to {MAX_K}"),
        ({"q": QUESTION, "k": True}, f"1 to {MAX_K}"),
        ({"q": QUESTION, "k": 2.5}, f"1 to {MAX_K}"),
        ({"q": 42}, "must be text"),
        ([QUESTION], "JSON object"),
        ({}, "missing"),
    ],
)
def test_post_ask_rejects_bad_input(client: TestClient, body: Any, needle: str) -> None:
    message = assert_clean_error(client.post("/api/ask", json=body), 422)
    assert needle in message


def test_post_ask_rejects_malformed_and_huge_bodies(client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    bad = client.post("/api/ask", content=b'{"q": "unclosed', headers=headers)
    assert "JSON object" in assert_clean_error(bad, 422)
    assert "JSON object" in assert_clean_error(client.post("/api/ask"), 422)
    huge = client.post("/api/ask", content=b"x" * 200_000, headers=headers)
    assert_clean_error(huge, 413, "too_large")


def test_unknown_route_and_method_are_json_errors(client: TestClient) -> None:
    assert_clean_error(client.get("/api/nothing-here"), 404, "not_found")
    assert_clean_error(client.delete("/api/ask"), 405, "method_not_allowed")


def test_unexpected_failure_is_a_generic_500(
    real_qa: CrampQA, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret detail at /home/someone/crampqa/engine.py line 1")

    monkeypatch.setattr(real_qa, "ask", boom)
    app = create_app(real_qa, warm_up=False)
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as failing:
        response = failing.get("/api/ask", params={"q": QUESTION})
    assert response.status_code == 500
    assert response.json() == INTERNAL_ERROR
    assert "secret" not in response.text and "Traceback" not in response.text


def test_foreign_host_is_refused(real_qa: CrampQA) -> None:
    with TestClient(create_app(real_qa, warm_up=False), base_url="http://evil.example") as c:
        assert_clean_error(c.get("/api/health"), 400, "bad_host")
    with TestClient(create_app(real_qa, warm_up=False, allowed_hosts=None),
                    base_url="http://evil.example") as c:
        assert c.get("/api/health").status_code == 200


# ---- answer cache and the engine thread ------------------------------------------------


def _engine_json(qa: CrampQA, question: str, k: int = 3) -> bytes:
    """The body a plain JSONResponse of the engine's answer would have."""
    return bytes(JSONResponse(qa.ask(question, k=k).to_dict()).body)


def _counting_ask(qa: CrampQA, monkeypatch: pytest.MonkeyPatch,
                  delay: float = 0.0) -> dict[str, int]:
    """Wrap ``qa.ask``: count calls and the most asks ever running at once."""
    real = qa.ask
    seen = {"calls": 0, "running": 0, "most": 0}
    guard = threading.Lock()

    def ask(question: str, k: int = 3, **kwargs: Any) -> Any:
        with guard:
            seen["calls"] += 1
            seen["running"] += 1
            seen["most"] = max(seen["most"], seen["running"])
        try:
            time.sleep(delay)
            return real(question, k=k, **kwargs)
        finally:
            with guard:
                seen["running"] -= 1

    monkeypatch.setattr(qa, "ask", ask)
    return seen


def test_cached_answer_is_byte_identical(real_qa: CrampQA) -> None:
    app = create_app(real_qa, warm_up=False)
    cache: AnswerCache = app.state.answer_cache
    expected = _engine_json(real_qa, QUESTION, 4)
    with TestClient(app, base_url=BASE) as c:
        first = c.get("/api/ask", params={"q": QUESTION, "k": 4})
        again = c.get("/api/ask", params={"q": QUESTION, "k": 4})
    assert (cache.stats.misses, cache.stats.hits) == (1, 1)
    for response in (first, again):
        assert response.status_code == 200
        assert response.content == expected
        assert response.headers["content-type"] == "application/json"
        assert response.headers["cache-control"] == "no-store"


def test_cached_answers_skip_the_framework_and_keep_every_header(
    real_qa: CrampQA, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(real_qa, warm_up=False)
    cache: AnswerCache = app.state.answer_cache
    with TestClient(app, base_url=BASE) as c:
        first = c.get("/api/ask", params={"q": QUESTION, "k": 2})  # the endpoint answers
        # from now on the endpoint (which claims the question in the cache) is not reached
        monkeypatch.setattr(cache, "claim", lambda key: pytest.fail("the endpoint was used"))
        hits = [c.get("/api/ask", params={"q": QUESTION, "k": 2}),
                c.get("/api/ask", params={"question": " " + QUESTION, "k": "02"}),
                c.get(f"/api/ask?q={QUESTION.replace(' ', '+')}&k=2")]
        # anything unusual goes the normal way, and is refused as before
        refused = [c.get("/api/ask", params={"q": QUESTION, "k": 2, "x": 1}),
                   c.get("/api/ask", params=[("q", QUESTION), ("q", QUESTION), ("k", "2")]),
                   c.get("/api/ask", params={"q": QUESTION, "question": QUESTION, "k": 2}),
                   c.get("/api/ask", params={"q": QUESTION, "k": 0}),
                   c.get("/api/ask", params={"q": QUESTION, "k": "two"}),
                   c.get("/api/ask", params={"q": QUESTION, "k": 2},
                         headers={"host": "evil.example"})]
    for hit in hits:
        assert hit.status_code == 200 and hit.content == first.content
        assert sorted(hit.headers.items()) == sorted(first.headers.items())
    assert cache.stats.hits == len(hits)
    assert [r.status_code for r in refused] == [422, 422, 422, 422, 422, 400]
    for response in refused:
        assert set(response.json()) == {"error", "message"}


def test_cache_is_keyed_by_question_and_every_parameter(
    real_qa: CrampQA, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(real_qa, warm_up=False)
    cache: AnswerCache = app.state.answer_cache
    seen = _counting_ask(real_qa, monkeypatch)
    with TestClient(app, base_url=BASE) as c:
        k2 = c.get("/api/ask", params={"q": QUESTION, "k": 2})
        k5 = c.get("/api/ask", params={"q": QUESTION, "k": 5})
        assert seen["calls"] == 2
        assert len(k2.json()["passages"]) == 2 and len(k5.json()["passages"]) == 5
        # the same question and k, however it is sent: one entry
        same = [c.get("/api/ask", params={"question": QUESTION, "k": 2}),
                c.post("/api/ask", json={"q": QUESTION, "k": 2}),
                c.get("/api/ask", params={"q": "  why do my\tcalves cramp  at night ", "k": 2})]
        assert seen["calls"] == 2
        assert all(r.content == k2.content for r in same)
        # a different question (even only in case) is a different entry
        upper = c.get("/api/ask", params={"q": QUESTION.upper(), "k": 2})
        assert seen["calls"] == 3
        assert upper.json()["question"] == QUESTION.upper()
    monkeypatch.undo()
    assert k2.content == _engine_json(real_qa, QUESTION, 2)
    assert k5.content == _engine_json(real_qa, QUESTION, 5)
    assert upper.content == _engine_json(real_qa, QUESTION.upper(), 2)
    assert len(cache) == 3


def test_new_index_version_empties_the_cache(
    fake_qa: CrampQA, corpus_copy: Path, tmp_path: Path, fake_settings: Any
) -> None:
    question = "quokka zebra tonic"
    app = create_app(fake_qa, warm_up=False)
    cache: AnswerCache = app.state.answer_cache
    with TestClient(app, base_url=BASE) as c:
        before = c.get("/api/ask", params={"q": question})
        assert c.get("/api/ask", params={"q": question}).content == before.content
        old_version = cache.version
        assert old_version == str(fake_qa.data.folder) and len(cache) == 1
        # a new index version: the corpus gains an article, the engine moves to the rebuild
        (corpus_copy / "quokka.md").write_text(
            "# Quokkas\nQuokka cramps are eased by zebra tonic, says nobody.\n", "utf-8")
        fresh = CrampQA.open(corpus_copy, tmp_path / "index", settings=fake_settings,
                             embedder=FakeEmbedder())
        assert fresh.data.folder != fake_qa.data.folder
        fake_qa.data, fake_qa.retriever = fresh.data, fresh.retriever
        after = c.get("/api/ask", params={"q": question})
    assert after.status_code == 200
    assert after.content == _engine_json(fresh, question)
    assert after.content != before.content
    assert "Quokka cramps" in after.json()["passages"][0]["text"]
    assert "Quokka cramps" not in before.text
    assert cache.version == str(fresh.data.folder) != old_version
    assert cache.stats.invalidations == 1 and len(cache) == 1


def test_answer_cache_is_bounded() -> None:
    def key(n: int, version: str = "v1") -> AnswerKey:
        return AnswerKey(version, AskRequest(f"question {n}", 3))

    cache = AnswerCache(max_entries=2, max_bytes=10)
    for n in range(3):
        assert cache.claim(key(n)) is None
        cache.finish(key(n), b"abc")
    assert len(cache) == 2 and cache.get(key(0)) is None  # the least recently used went
    assert cache.get(key(1)) == b"abc"  # now the most recently used
    assert cache.claim(key(3)) is None
    cache.finish(key(3), b"abcd")  # 3 + 3 + 4 bytes > 10: evicts key 2, keeps key 1
    assert cache.get(key(2)) is None and cache.get(key(1)) == b"abc"
    assert cache.size_bytes == 7 and cache.stats.evictions == 2
    cache.put(key(4), b"x" * 11)  # larger than the whole cache: not stored
    assert cache.get(key(4)) is None
    cache.put(key(5, "v0"), b"old")  # an answer for a version that is not current
    assert cache.get(key(1)) == b"abc" and len(cache) == 2
    assert cache.get(key(1, "v2")) is None and len(cache) == 0  # a new version empties it
    off = AnswerCache(max_entries=0)
    assert off.claim(key(1)) is None
    off.finish(key(1), b"abc")
    assert off.get(key(1)) is None and len(off) == 0


def test_errors_are_not_cached(real_qa: CrampQA, monkeypatch: pytest.MonkeyPatch) -> None:
    real = real_qa.ask
    calls = []

    def flaky(question: str, k: int = 3, **kwargs: Any) -> Any:
        calls.append(question)
        if len(calls) == 1:
            raise RuntimeError("a passing failure")
        return real(question, k=k, **kwargs)

    monkeypatch.setattr(real_qa, "ask", flaky)
    app = create_app(real_qa, warm_up=False)
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as c:
        failed = c.get("/api/ask", params={"q": QUESTION})
        assert failed.status_code == 500 and failed.json() == INTERNAL_ERROR
        ok = c.get("/api/ask", params={"q": QUESTION})
        assert ok.status_code == 200 and ok.json()["passages"]
        assert_clean_error(c.get("/api/ask", params={"q": " "}), 422)
    assert len(calls) == 2  # the blank question never reached the engine
    assert app.state.answer_cache.pending() == 0


def test_concurrent_questions_run_one_at_a_time_and_share_answers(
    real_qa: CrampQA, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _counting_ask(real_qa, monkeypatch, delay=0.05)
    app = create_app(real_qa, warm_up=False, engine_threads=1)
    questions = [QUESTION] * 6 + ["magnesium and vitamin D", "potassium in bananas"] * 2
    with TestClient(app, base_url=BASE) as c, ThreadPoolExecutor(len(questions)) as pool:
        responses = list(pool.map(lambda q: c.get("/api/ask", params={"q": q}), questions))
    assert all(r.status_code == 200 for r in responses)
    assert seen["most"] == 1  # the engine never ran two asks at once
    assert seen["calls"] == 3  # each distinct question was answered once
    assert len({r.content for r in responses[:6]}) == 1
    stats = app.state.answer_cache.stats
    assert stats.misses == 3 and stats.hits + stats.shared == len(questions) - 3


def test_engine_threads_answer_side_by_side_as_one_at_a_time(
    real_qa: CrampQA, monkeypatch: pytest.MonkeyPatch
) -> None:
    questions = [QUESTION, "magnesium and vitamin D", "potassium in bananas",
                 "Wadenkrämpfe nachts", "how much vitamin b12 do vegans need",
                 "does quinine help leg cramps", "what is the capital of France",
                 "calcium deficiency symptoms"]
    alone = [render_json(real_qa.ask(q).to_dict()) for q in questions]  # before the wrap
    seen = _counting_ask(real_qa, monkeypatch, delay=0.05)
    app = create_app(real_qa, warm_up=False, engine_threads=3, cache_entries=0)
    assert app.state.engine_threads == 3
    with TestClient(app, base_url=BASE) as c, ThreadPoolExecutor(len(questions)) as pool:
        responses = list(pool.map(lambda q: c.get("/api/ask", params={"q": q}), questions))
    assert [r.content for r in responses] == alone
    assert 2 <= seen["most"] <= 3  # asks ran side by side, never more than the pool
    assert seen["calls"] == len(questions)


def test_engine_threads_default_to_the_cpus_and_must_be_positive(real_qa: CrampQA) -> None:
    assert 1 <= default_engine_threads() <= MAX_DEFAULT_ENGINE_THREADS
    assert create_app(real_qa, warm_up=False).state.engine_threads == default_engine_threads()
    with pytest.raises(InputError):
        create_app(real_qa, warm_up=False, engine_threads=0)


def test_a_running_ask_does_not_block_other_requests(
    real_qa: CrampQA, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = real_qa.ask
    started, release = threading.Event(), threading.Event()

    def slow(question: str, k: int = 3, **kwargs: Any) -> Any:
        started.set()
        release.wait(30)
        return real(question, k=k, **kwargs)

    monkeypatch.setattr(real_qa, "ask", slow)
    app = create_app(real_qa, warm_up=False)
    with TestClient(app, base_url=BASE) as c, ThreadPoolExecutor(1) as pool:
        asking = pool.submit(c.get, "/api/ask", params={"q": QUESTION})
        assert started.wait(30)
        cached_meanwhile = [c.get("/api/health"), c.get("/api/ask", params={"q": ""})]
        still_running = not asking.done()
        release.set()
        assert asking.result().status_code == 200
    assert still_running
    assert cached_meanwhile[0].status_code == 200
    assert_clean_error(cached_meanwhile[1], 422)


# ---- service endpoints, docs, page ------------------------------------------------------


def test_health(client: TestClient, real_qa: CrampQA, real_index: Path) -> None:
    data = client.get("/api/health").json()
    assert data == {
        "status": "ok",
        "documents": len(real_qa.sources()),
        "passages": len(real_qa.data.passages),
        "index": real_qa.data.folder.name,
        "disclaimer": DISCLAIMER,
    }
    assert (real_index / data["index"]).is_dir()


def test_sources(client: TestClient, real_qa: CrampQA) -> None:
    response = client.get("/api/sources")
    assert response.status_code == 200
    assert response.json() == real_qa.sources()
    assert {s["doc_id"] for s in response.json()} >= {"000_153f9343c5352d90"}


def test_openapi_docs(client: TestClient) -> None:
    # no Swagger UI page: it would load from a CDN (blank offline, a third-party request)
    assert client.get("/docs").status_code == 404
    assert "/docs" not in client.get("/").text
    schema = client.get("/openapi.json").json()
    assert {"/api/ask", "/api/health", "/api/sources"} <= set(schema["paths"])
    assert {"get", "post"} <= set(schema["paths"]["/api/ask"])


def test_page_and_security_headers(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "not medical advice" in html
    assert '<label for="question">' in html and 'id="question"' in html
    assert 'aria-live="polite"' in html
    assert 'name="viewport"' in html
    # no inline script or style: everything comes from /static under the CSP
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None
    assert " style=" not in html and "<style" not in html and " on" + "click=" not in html
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    for name in ("app.js", "style.css", "favicon.svg"):
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200, name
        assert "unsafe-inline" not in asset.headers["content-security-policy"]


def test_page_script_never_parses_data_as_html() -> None:
    script = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    code = re.sub(r"//[^\n]*", "", script)  # comments may mention what is avoided
    for sink in (".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write",
                 "eval(", "new Function", "DOMParser"):
        assert sink not in code, sink
    assert "textContent" in code and "createTextNode" in code
    assert 'createElement("mark")' in code or '"mark"' in code
    assert ABSTAIN_MESSAGE in code


def test_serve_reports_a_busy_port(capsys: pytest.CaptureFixture[str]) -> None:
    from crampqa.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as exit_info:
            main(["serve", "--port", str(port)])
    assert exit_info.value.code == 2
    assert f"127.0.0.1:{port}" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "threads", "access_log"), [
    ([], None, False),
    (["--threads", "1", "--access-log"], 1, True),
])
def test_serve_passes_threads_and_keeps_questions_out_of_the_log_by_default(
    real_index: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
    threads: int | None, access_log: bool,
) -> None:
    import uvicorn

    from crampqa.cli import main

    started: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.update(app=app, **kw))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    main(["serve", "--port", str(port), "--corpus", str(CORPUS), "--index", str(real_index),
          *args])
    # questions are health data: the access log (which holds them in the URL) is opt-in
    assert started["access_log"] is access_log
    assert started["app"].state.engine_threads == (threads or default_engine_threads())


# ---- the page in a real browser ---------------------------------------------------------


@pytest.fixture
def live_server(real_index: Path, tmp_path: Path) -> Iterator[str]:
    """`crampqa serve` in a subprocess on a free loopback port; yields its base URL."""
    try:
        with running_server(CORPUS, real_index, startup_s=120, cwd=PROJECT_ROOT,
                            log_path=tmp_path / "serve.log") as base:
            yield base
    except ServerStartError as exc:
        pytest.fail(str(exc))


def test_running_server_reports_a_server_that_cannot_start(tmp_path: Path) -> None:
    with pytest.raises(ServerStartError) as info, running_server(
        tmp_path / "no-corpus", tmp_path / "no-index", startup_s=120, cwd=PROJECT_ROOT
    ):
        pytest.fail("the server should not have started")
    assert "exited early" in str(info.value) and "crampqa: error" in str(info.value)


@pytest.mark.browser
def test_page_in_headless_chromium(live_server: str, real_qa: CrampQA, tmp_path: Path) -> None:
    """Screenshots go to this test's tmp_path; CRAMPQA_UPDATE_SCREENSHOT=1 also copies the
    desktop one to docs/screenshot.png (the README's), which is otherwise never written."""
    chromium = chromium_or_skip()
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is missing (pip install playwright)")

    expected = real_qa.ask(QUESTION, k=3).to_dict()["passages"]
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            # a phone-sized screen, driven by keyboard only
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(live_server + "/")
            box = page.get_by_label("Your question")
            box.focus()
            page.keyboard.type(QUESTION)
            page.keyboard.press("Enter")
            passages = page.locator("article.passage")
            expect(passages).to_have_count(len(expected), timeout=30_000)
            first = passages.first
            expect(first.locator(".source-id")).to_have_text(expected[0]["source_id"])
            expect(first.locator(".passage-title")).to_have_text(expected[0]["title"])
            assert first.locator(".passage-text").text_content() == expected[0]["text"]
            if expected[0]["highlights"]:
                start, end = expected[0]["highlights"][0]
                rel = expected[0]["start"]
                expect(first.locator("mark").first).to_have_text(
                    expected[0]["text"][start - rel : end - rel])
            expect(page.locator("#disclaimer")).to_contain_text("not medical advice")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"

            page.screenshot(path=str(artifacts / "web-page-phone.png"), full_page=True)

            # desktop screenshot for the README
            page.set_viewport_size({"width": 1000, "height": 900})
            shot = artifacts / "web-page.png"
            page.screenshot(path=str(shot), full_page=True)
            if os.environ.get("CRAMPQA_UPDATE_SCREENSHOT") == "1":
                shutil.copyfile(shot, PROJECT_ROOT / "docs" / "screenshot.png")

            # abstention and escaping, with a crafted answer: markup in a passage stays text
            hostile = '<img src=x onerror="window.pwned=1"><b>bold</b> & more'
            crafted = {
                "question": "q", "abstained": True, "message": ABSTAIN_MESSAGE,
                "confidence": 0.1, "disclaimer": DISCLAIMER,
                "passages": [{**expected[0], "text": hostile, "start": 100,
                              "end": 100 + len(hostile), "highlights": [[110, 118]],
                              "heading": "<i>h</i>", "context": None, "weak": True}],
            }
            page.route("**/api/ask?**", lambda route: route.fulfill(
                status=200, content_type="application/json", body=json.dumps(crafted)))
            box.fill("anything")
            box.press("Enter")
            expect(page.locator(".abstain")).to_have_text(ABSTAIN_MESSAGE)
            expect(page.locator(".badge")).to_have_text("Weak match")
            text = page.locator(".passage-text")
            expect(text).to_have_text(hostile)
            assert text.locator("img, b").count() == 0
            assert page.locator(".heading-text i").count() == 0
            assert text.locator("mark").count() == 0  # a weak match is never highlighted
            assert page.evaluate("window.pwned === undefined")
            page.screenshot(path=str(artifacts / "web-page-abstain.png"))
        finally:
            browser.close()
    assert not problems, problems


@pytest.mark.parametrize(("cpu_max", "limit"), [
    ("200000 100000\n", 2), ("150000 100000\n", 2), ("50000 100000\n", 1),
    ("max 100000\n", None), ("garbage\n", None), (None, None),
])
def test_usable_cpus_honours_a_cgroup_quota(
    tmp_path: Path, cpu_max: str | None, limit: int | None
) -> None:
    path = tmp_path / "cpu.max"
    if cpu_max is not None:
        path.write_text(cpu_max, encoding="ascii")
    unlimited = usable_cpus(tmp_path / "absent")
    assert usable_cpus(path) == (unlimited if limit is None else min(unlimited, limit))
