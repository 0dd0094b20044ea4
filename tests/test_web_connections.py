"""Responses sent before the request body has fully arrived close the connection
(``Connection: close``): a client that never finishes its body cannot hold a socket.
A real uvicorn server with the guarded protocol runs in a thread, with a request
deadline far longer than the test waits, so only the early close can end the exchange."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from crampqa import CrampQA
from tests.conftest import FakeEmbedder
from tests.test_web_protocol import parse, serving

#: the request deadline of the server under test: never reached here
DEADLINE = 60.0
#: how long the server may take to hang up after its early answer
WAIT = 5.0
HOST = b"Host: 127.0.0.1\r\n"


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    from crampqa.web.app import create_app

    root = tmp_path_factory.mktemp("connections")
    corpus = root / "c"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Night cramps. Calf cramps at night are common.\n")
    qa = CrampQA.open(corpus, root / "index", embedder=FakeEmbedder())
    with serving(create_app(qa, warm_up=False, follow_index=False), DEADLINE) as port:
        yield port


def early_answer(port: int, data: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Send ``data`` (a request whose body never ends), then read until the server hangs up;
    fail if it keeps the connection open."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(data)
        start = time.monotonic()
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                pytest.fail(f"connection still open after {WAIT} s; got {b''.join(chunks)!r}")
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert time.monotonic() - start < WAIT
    status, headers, body = parse(b"".join(chunks))
    assert headers["connection"] == "close"
    return status, headers, body


def chunked_post(size: int) -> bytes:
    chunk = b"x" * 8192
    body = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(size // 8192))
    return (b"POST /api/ask HTTP/1.1\r\n" + HOST + b"Content-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + body)  # no last chunk: never ends


@pytest.mark.parametrize(("data", "status", "code"), [
    (chunked_post(80 * 1024), 413, "too_large"),
    (b"POST /api/ask HTTP/1.1\r\n" + HOST + b"Content-Length: 999999\r\n\r\n{\"q\"", 413,
     "too_large"),
    (b"POST /api/ask HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 100\r\n\r\n{\"q\"",
     400, "bad_host"),
    (b"POST /nowhere HTTP/1.1\r\n" + HOST + b"Content-Length: 100\r\n\r\n{\"q\"", 404,
     "not_found"),
    (b"PUT /api/health HTTP/1.1\r\n" + HOST + b"Content-Length: 100\r\n\r\nabc", 405,
     "method_not_allowed"),
], ids=["chunked-too-large", "length-too-large", "bad-host", "not-found", "bad-method"])
def test_an_early_error_closes_the_connection(port: int, data: bytes, status: int,
                                              code: str) -> None:
    got, _, body = early_answer(port, data)
    assert (got, body["error"]) == (status, code)


def test_an_answer_sent_before_an_unread_body_closes_the_connection(port: int) -> None:
    got, _, body = early_answer(port, b"GET /api/health HTTP/1.1\r\n" + HOST
                                + b"Content-Length: 100\r\n\r\nabc")
    assert got == 200 and body["status"] == "ok"


def test_complete_requests_keep_the_connection(port: int) -> None:
    body = json.dumps({"q": "calf cramps", "k": 1}).encode()
    post = (b"POST /api/ask HTTP/1.1\r\n" + HOST + b"Content-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    wrong = b"GET /api/ask?k=0&q=x HTTP/1.1\r\n" + HOST + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        for request, status in ((post, b"200"), (wrong, b"422"), (post, b"200")):
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                data += sock.recv(65536)
            assert data.startswith(b"HTTP/1.1 " + status), data
            assert b"connection: close" not in data.lower()


