"""The HTTP protocol of ``crampqa serve`` (issue #15): half-sent requests are timed out
with 408, unparsable ones get 400; both as ``{"error", "message"}`` JSON with the
service's security headers. A real uvicorn server runs in a thread, on a free port.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from crampqa import CrampQA
from crampqa.config import MODEL_NAME
from crampqa.embedding import EMBEDDERS
from crampqa.web.app import SECURITY_HEADERS, create_app
from crampqa.web.launch import free_port
from crampqa.web.protocol import protocol_class
from tests.conftest import FakeEmbedder, run_main

TIMEOUT = 0.5


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("protocol")
    corpus = root / "c"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Night cramps. Calf cramps at night are common.\n")
    qa = CrampQA.open(corpus, root / "index", embedder=FakeEmbedder())
    return create_app(qa, warm_up=False)


@contextmanager
def serving(app: Any, timeout: float = TIMEOUT) -> Iterator[int]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=protocol_class(timeout),
                            log_level="critical", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture(scope="module")
def port(app: Any) -> Iterator[int]:
    with serving(app) as port:
        yield port


def exchange(port: int, data: bytes, wait: float = 10.0) -> tuple[bytes, float]:
    """Send ``data``, read until the server closes: (response, seconds it took)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        start = time.monotonic()
        if data:
            sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                pytest.fail(f"no answer within {wait} s; got {b''.join(chunks)!r}")
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks), time.monotonic() - start


def parse(response: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


def assert_guarded(headers: dict[str, str]) -> None:
    assert headers["content-type"] == "application/json"
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value
    assert headers["cache-control"] == "no-store"
    assert "content-security-policy" in headers


@pytest.mark.parametrize("data", [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
                                  b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"],
                         ids=["nonsense", "bad-header", "tls-hello"])
def test_unparsable_request_gets_json_400_with_security_headers(port: int, data: bytes) -> None:
    response, _ = exchange(port, data)
    status, headers, body = parse(response)
    assert status == 400
    assert body == {"error": "http_error", "message": "The request is not valid HTTP."}
    assert_guarded(headers)


@pytest.mark.parametrize("data", [
    b"",
    b"GET /api/hea",
    b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n",
    b"POST /api/ask HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100\r\n\r\n{\"q\": \"cra",
], ids=["nothing", "half-request-line", "half-headers", "half-body"])
def test_half_sent_request_is_timed_out_with_408(port: int, data: bytes) -> None:
    response, took = exchange(port, data)
    status, headers, body = parse(response)
    assert status == 408
    assert body == {"error": "request_timeout", "message": "The request was not received "
                    f"within {TIMEOUT:g} seconds; send it again."}
    assert_guarded(headers)
    assert TIMEOUT * 0.8 <= took < TIMEOUT + 5


def test_complete_requests_and_idle_keep_alive_are_not_cut(port: int) -> None:
    request = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for pause in (0.0, 2 * TIMEOUT):  # idle longer than the deadline between requests
            time.sleep(pause)
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                data += sock.recv(65536)
            assert data.startswith(b"HTTP/1.1 200 "), data
    body = json.dumps({"q": "calf cramps", "k": 1}).encode()
    post = (b"POST /api/ask HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    response, _ = exchange(port, post + body)
    assert response.startswith(b"HTTP/1.1 200 "), response


def test_serve_uses_the_guarded_protocol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(EMBEDDERS, MODEL_NAME, FakeEmbedder)
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Night cramps. Calf cramps at night are common.\n")
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    code, _, err = run_main("serve", "--corpus", corpus, "--index", tmp_path / "index",
                            "--port", str(free_port()), "--request-timeout", "3")
    assert code == 0, err
    assert seen["http"].__name__ == "GuardedHttpProtocol"
    assert seen["http"].request_timeout_s == 3
