"""uvicorn's HTTP protocol for ``crampqa serve``, with a deadline for reading each request
and JSON error responses from the protocol itself.

uvicorn times out idle keep-alive connections only: a client that sends half a request
line, half its headers or half its body holds the connection forever, and a request
uvicorn cannot parse gets a plain-text 400 without the service's security headers.
:func:`protocol_class` adds both: a request (headers and body) must arrive within
``request_timeout`` seconds of its first byte (or of the connection opening), else the
client gets ``408 request_timeout`` and the connection is closed; an unparsable request
gets ``400 http_error``. Both have the ``{"error", "message"}`` JSON shape and the same
headers as every other response.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from crampqa.web.app import PAGE_CSP, SECURITY_HEADERS, render_json

#: Seconds a client has to send a whole request (headers and body; bodies are at most
#: 64 KiB), counted from its first byte or from the connection opening.
REQUEST_TIMEOUT_S = 10.0

_REASONS = {400: "Bad Request", 408: "Request Timeout"}


def error_response_bytes(status: int, code: str, message: str,
                         extra_headers: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
    """A complete HTTP/1.1 error response that closes the connection."""
    body = render_json({"error": code, "message": message})
    headers: list[tuple[str, str]] = [
        ("content-type", "application/json"), ("content-length", str(len(body))),
        ("connection", "close"), ("cache-control", "no-store"), *SECURITY_HEADERS.items(),
        ("content-security-policy", PAGE_CSP),
    ]
    head = f"HTTP/1.1 {status} {_REASONS[status]}\r\n".encode("ascii")
    head += b"".join(name + b": " + value + b"\r\n" for name, value in extra_headers)
    head += "".join(f"{name}: {value}\r\n" for name, value in headers).encode("latin-1")
    return head + b"\r\n" + body


def protocol_class(request_timeout: float = REQUEST_TIMEOUT_S) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with the request deadline and JSON errors (pass it
    as ``uvicorn.run(..., http=protocol_class())``)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpProtocol(HttpToolsProtocol):
        """See the module docstring."""

        request_timeout_s = request_timeout
        _deadline: asyncio.TimerHandle | None = None
        _headers_done = False

        def _arm(self) -> None:
            if self._deadline is None:
                self._deadline = self.loop.call_later(request_timeout, self._timed_out)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _send_error(self, status: int, code: str, message: str) -> None:
            self.transport.write(error_response_bytes(status, code, message,
                                                      self.server_state.default_headers))
            self.transport.close()

        def _timed_out(self) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            cycle = self.cycle
            if self._headers_done and cycle is not None and cycle.response_started:
                self.transport.close()  # already answered (e.g. 413): just hang up
                return
            self.logger.warning("Request not received within %g s; closing the connection.",
                                request_timeout)
            self._send_error(408, "request_timeout",
                             f"The request was not received within {request_timeout:g} "
                             "seconds; send it again.")

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            self._headers_done = False
            self._arm()
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._headers_done = True
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def send_400_response(self, msg: str) -> None:
            self._disarm()
            self._send_error(400, "http_error", "The request is not valid HTTP.")

    return GuardedHttpProtocol
