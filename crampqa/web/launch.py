"""Start ``crampqa serve`` in a subprocess and wait until it answers (tests, benchmarks).

Used by the end-to-end browser test and by ``benchmarks/load_web.py``, so both run the
real command on a free loopback port the same way. Standard library only.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO

HOST = "127.0.0.1"


class ServerStartError(RuntimeError):
    """``crampqa serve`` exited or did not answer in time; the message carries its log."""


def free_port(host: str = HOST) -> int:
    """A currently free TCP port on ``host``."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _healthy(host: str, port: int) -> bool:
    """Whether ``GET /api/health`` answers 200 (no proxy, two-second timeout)."""
    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", "/api/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _log_text(log: IO[str]) -> str:
    log.flush()
    log.seek(0)
    return log.read()


@contextmanager
def running_server(
    corpus: str | Path | None = None,
    index: str | Path | None = None,
    *,
    port: int | None = None,
    startup_s: float = 120.0,
    log_path: Path | None = None,
    cwd: Path | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[str]:
    """`crampqa serve` on 127.0.0.1 (a free port by default); yields its base URL once
    ``/api/health`` answers, and stops the server on exit.

    ``extra_args`` are added to the command line (e.g. ``["--threads", "1"]``). The
    server's output goes to ``log_path`` (a temporary file by default). Raises
    :class:`ServerStartError`, with that output, if the server exits early or does not
    answer within ``startup_s`` seconds.
    """
    port = free_port() if port is None else port
    cmd = [sys.executable, "-m", "crampqa.cli", "serve", "--host", HOST, "--port", str(port)]
    if corpus is not None:
        cmd += ["--corpus", str(corpus)]
    if index is not None:
        cmd += ["--index", str(index)]
    cmd += list(extra_args)
    with ExitStack() as stack:
        log: IO[str]
        if log_path is None:
            log = stack.enter_context(tempfile.TemporaryFile(mode="w+", encoding="utf-8"))
        else:
            log = stack.enter_context(log_path.open("w+", encoding="utf-8"))
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            deadline = time.monotonic() + startup_s
            while not _healthy(HOST, port):
                if proc.poll() is not None:
                    raise ServerStartError(f"crampqa serve exited early:\n{_log_text(log)}")
                if time.monotonic() > deadline:
                    raise ServerStartError(f"crampqa serve did not start in {startup_s:.0f} s:"
                                           f"\n{_log_text(log)}")
                time.sleep(0.25)
            yield f"http://{HOST}:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
