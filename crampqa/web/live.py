"""Following a rebuilt index while serving.

``crampqa serve`` opens one index version at start-up. :class:`LiveIndex` watches the
index root's ``CURRENT`` pointer (one ``stat`` a second on a background thread); when it
names a new complete version, that version is opened *beside* the one being served
(fully verified, every file hashed, and warmed up), then swapped in with one assignment.
An ask takes the version being served when it starts (:meth:`LiveIndex.use`) and keeps
it until it ends, so requests in flight finish on the old version; the old one's
:class:`~crampqa.store.VersionLease` is released when its last request is done, and a
later build may then prune it. A new version that cannot be opened (damaged, removed
meanwhile) is logged and the service goes on answering from the version it has.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from crampqa.engine import CrampQA
from crampqa.errors import CrampQAError, IndexError_
from crampqa.store import CURRENT_FILE, VersionLease, current_version

#: uvicorn's error log: shown on stderr by ``crampqa serve``
log = logging.getLogger("uvicorn.error")

#: Opens a complete version folder for serving.
Opener = Callable[[Path], CrampQA]
#: Seconds between two looks at ``CURRENT``.
DEFAULT_INTERVAL_S = 1.0


@dataclass(eq=False)
class _Served:
    """One version being served (or retired), with its lease and requests using it."""

    qa: CrampQA
    lease: VersionLease | None
    users: int = 0
    retired: bool = False


class LiveIndex:
    """The engine being served, switched to each new complete index version.

    ``opener`` opens a version folder (default: :meth:`CrampQA.open_version` with full
    verification); ``on_switch`` is called with the new engine after each switch.
    ``lease=False`` takes no lease (an engine whose folder is not in an index root).
    """

    def __init__(
        self,
        qa: CrampQA,
        *,
        opener: Opener | None = None,
        on_switch: Callable[[CrampQA], None] | None = None,
        interval: float = DEFAULT_INTERVAL_S,
        lease: bool = True,
    ) -> None:
        self.root = qa.data.folder.parent
        self.interval = interval
        self.on_switch = on_switch
        self._opener = opener or self._open
        self._lock = threading.Lock()
        self._loading = threading.Lock()
        self._served = _Served(qa, VersionLease(qa.data.folder) if lease else None)
        self._seen = self._stamp()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: how many times a new version was switched in
        self.switches = 0
        #: why the last new version could not be served (None after a good switch)
        self.last_error: str | None = None

    # ---- the engine ---------------------------------------------------------------------
    @property
    def current(self) -> CrampQA:
        """The engine of the version served now."""
        return self._served.qa

    @contextmanager
    def use(self) -> Iterator[CrampQA]:
        """The engine served now, kept (not released) until the block ends."""
        with self._lock:
            served = self._served
            served.users += 1
        try:
            yield served.qa
        finally:
            with self._lock:
                served.users -= 1
                done = served.retired and served.users == 0
            if done:
                self._release(served)

    # ---- watching CURRENT -----------------------------------------------------------------
    def start(self) -> None:
        """Watch ``CURRENT`` on a daemon thread until :meth:`close`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="crampqa-index-watch",
                                            daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop watching and release the served version's lease."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        with self._lock:
            served = self._served
        if served.lease is not None:
            served.lease.release()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # never let the watcher die; the service keeps answering
                log.exception("crampqa: following the index failed")

    def _stamp(self) -> tuple[int, int, int] | None:
        """Identity of the ``CURRENT`` file (a build replaces it: a new inode)."""
        try:
            st = os.stat(self.root / CURRENT_FILE)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def check(self) -> bool:
        """Switch to the version ``CURRENT`` names if it is new (loading it first, while
        the old one keeps answering). True when a switch happened."""
        stamp = self._stamp()
        if stamp == self._seen:
            return False
        with self._loading:
            if stamp == self._seen:
                return False
            self._seen = stamp
            error = ""
            for _ in range(3):  # a version pruned just now: CURRENT names a newer one
                try:
                    folder = current_version(self.root)
                    if folder is None or folder == self.current.data.folder:
                        return False
                    lease = VersionLease(folder)
                    break
                except IndexError_ as exc:
                    error = exc.message
            else:
                self._failed(error)
                return False
            try:
                qa = self._opener(folder)
            except CrampQAError as exc:
                lease.release()
                self._failed(exc.message)
                return False
            except BaseException:
                lease.release()
                raise
            self._switch(qa, lease)
            return True

    def _failed(self, message: str) -> None:
        self.last_error = message
        log.warning("crampqa: cannot serve the new index version: %s (still answering "
                    "from %s)", message, self.current.data.folder.name)

    def _open(self, folder: Path) -> CrampQA:
        return CrampQA.open_version(folder, corpus_dir=self.current.corpus_dir,
                                    verify_full=True, search=self.current.search)

    def _switch(self, qa: CrampQA, lease: VersionLease) -> None:
        with self._lock:
            old, self._served = self._served, _Served(qa, lease)
            old.retired = True
            done = old.users == 0
        self.switches += 1
        self.last_error = None
        log.info("crampqa: now serving index version %s", qa.data.folder.name)
        if self.on_switch is not None:
            self.on_switch(qa)
        if done:
            self._release(old)

    @staticmethod
    def _release(served: _Served) -> None:
        if served.lease is not None:
            served.lease.release()
