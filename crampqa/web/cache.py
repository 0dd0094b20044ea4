"""A bounded cache of rendered answers for the web service.

An answer is deterministic for a fixed index version: the same cleaned question and the
same parameters over the same index give the same passages. The web service therefore
keeps the JSON bytes of recent answers, keyed by the index version, the cleaned question
(as :func:`crampqa.engine.clean_question` returns it) and every parameter of the ask. The
cache is a least-recently-used map bounded by entries and by bytes; it empties itself
when it sees a new index version (and never goes back to an older one), and it is safe
to use from several threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crampqa.web.service import AskRequest

#: Default bounds: answers are 2-60 kB (k=3 is about 5 kB), so this holds thousands.
DEFAULT_MAX_ENTRIES = 2048
DEFAULT_MAX_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class AnswerKey:
    """Everything an answer depends on: the index version and the request (cleaned
    question and every parameter)."""

    version: str
    request: AskRequest


@dataclass
class CacheStats:
    """Counters since start-up (or since :meth:`AnswerCache.clear`)."""

    hits: int = 0
    misses: int = 0
    shared: int = 0  # requests that waited for an identical question already being answered
    evictions: int = 0
    invalidations: int = 0  # times the cache emptied itself for a new index version


class AnswerCache:
    """LRU map ``AnswerKey -> JSON bytes``, bounded by ``max_entries`` and ``max_bytes``.

    ``max_entries=0`` turns storing off (every request computes its answer, except that
    identical questions asked while one is being computed share it: see :meth:`claim`).
    """

    def __init__(
        self, max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        if max_entries < 0 or max_bytes < 0:
            raise ValueError("cache bounds must not be negative")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.stats = CacheStats()
        self._entries: OrderedDict[AnswerKey, bytes] = OrderedDict()
        self._bytes = 0
        self._version: str | None = None
        self._retired: set[str] = set()  # versions held before (a few names per rebuild)
        self._pending: dict[AnswerKey, Future[bytes]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """Bytes of answers held now."""
        return self._bytes

    @property
    def version(self) -> str | None:
        """The index version the held answers belong to."""
        return self._version

    def _see_version(self, version: str) -> bool:
        """Drop every answer when ``version`` is new, and hold it from now on; False for
        a version held before (an old version is never held again) (lock held)."""
        if version == self._version:
            return True
        if version in self._retired:
            return False
        if self._version is not None:
            self.stats.invalidations += 1
            self._retired.add(self._version)
        self._entries.clear()
        self._bytes = 0
        self._version = version
        return True

    def use_version(self, version: str) -> None:
        """The service now answers from ``version``: the answers of older ones go."""
        with self._lock:
            self._see_version(version)

    def _stored(self, key: AnswerKey) -> bytes | None:
        """The stored answer, now the most recently used, or None (lock held)."""
        if not self._see_version(key.version):
            return None
        body = self._entries.get(key)
        if body is not None:
            self._entries.move_to_end(key)
        return body

    def get(self, key: AnswerKey) -> bytes | None:
        """The stored answer for ``key`` (now the most recently used), or None."""
        with self._lock:
            return self._stored(key)

    def put(self, key: AnswerKey, body: bytes) -> None:
        """Store an answer, evicting the least recently used ones beyond the bounds.

        An answer for another index version than the newest one seen is not stored, and
        neither is one larger than ``max_bytes``.
        """
        with self._lock:
            self._put(key, body)

    def _put(self, key: AnswerKey, body: bytes) -> None:
        if key.version != self._version or self.max_entries == 0 or len(body) > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old)
        self._entries[key] = body
        self._bytes += len(body)
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped)
            self.stats.evictions += 1

    def lookup(self, key: AnswerKey) -> bytes | None:
        """The stored answer for ``key`` (counted as a hit), or None (not counted: the
        request then goes on to :meth:`claim`)."""
        with self._lock:
            body = self._stored(key)
            if body is not None:
                self.stats.hits += 1
            return body

    def claim(self, key: AnswerKey) -> bytes | Future[bytes] | None:
        """Look ``key`` up for a request, in one step.

        Returns the stored answer (a hit); or the future of the identical question that
        another request is already having answered (wait on it); or None: the caller now
        owns the computation and must call :meth:`finish` with its result or error.
        """
        with self._lock:
            body = self._stored(key)
            if body is not None:
                self.stats.hits += 1
                return body
            pending = self._pending.get(key)
            if pending is not None:
                self.stats.shared += 1
                return pending
            self.stats.misses += 1
            pending = Future()
            pending.set_running_or_notify_cancel()
            self._pending[key] = pending
            return None

    def finish(
        self,
        key: AnswerKey,
        body: bytes | None,
        error: BaseException | None = None,
        *,
        store: bool = True,
    ) -> None:
        """End a claimed computation: store the answer (or pass on its error) and wake
        the requests that waited for it. Errors are never stored: the next identical
        question is answered afresh; nor is an answer given with ``store=False``.
        """
        with self._lock:
            pending = self._pending.pop(key, None)
            if body is not None and store:
                self._put(key, body)
        if pending is not None:
            if body is not None:
                pending.set_result(body)
            else:
                pending.set_exception(error or RuntimeError("the answer was not computed"))

    def pending(self) -> int:
        """How many claimed answers are being computed now."""
        with self._lock:
            return len(self._pending)

    def clear(self) -> None:
        """Drop every stored answer and reset the counters (pending work is kept)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self.stats = CacheStats()
