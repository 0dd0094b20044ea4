"""Every error crampqa reports to a user, in one place.

Each error carries a one-line message that says what happened and what to do,
an exit code for the CLI and an HTTP status for the web service. The shells
(CLI, web) turn these into output in exactly one place each; nothing else
prints tracebacks for user mistakes.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

#: How every message about an unusable index ends.
REBUILD_HINT = "run `crampqa index --rebuild`"


class CrampQAError(Exception):
    """Base class: a clear, one-line, user-facing failure."""

    exit_code: int = 1
    http_status: int = 500
    code: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        """JSON error shape shared by the CLI (--json) and the web service."""
        return {"error": self.code, "message": self.message}


class InputError(CrampQAError):
    """The user's question or option is unusable (empty, too long, bad value)."""

    exit_code = 2
    http_status = 422
    code = "bad_input"


class UnknownSourceError(InputError):
    """A source ID names no document of the index, or offsets outside it."""

    http_status = 404
    code = "unknown_source"


class CorpusError(CrampQAError):
    """The corpus folder or a document in it cannot be used."""

    exit_code = 3
    http_status = 500
    code = "corpus_error"


class IndexError_(CrampQAError):
    """The index is missing, damaged, stale or incompatible."""

    exit_code = 4
    http_status = 503
    code = "index_error"


class IndexNotWritableError(IndexError_):
    """The index folder cannot be written (permissions, a read-only file system)."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        #: why, in a few words (the system's reason: "Permission denied", …)
        self.detail = detail


class CorpusMismatchError(IndexError_):
    """A build would switch an index to another corpus folder than the one it holds."""

    code = "corpus_mismatch"
    http_status = 409


class IndexLockedError(IndexError_):
    """Another process is building the same index."""

    exit_code = 5
    code = "index_locked"


class DiskFullError(IndexError_):
    """The disk (or quota) holding the index is full: nothing was changed."""

    code = "disk_full"
    http_status = 507

    def __init__(self, root: Path) -> None:
        super().__init__(f"No space left in {root}: free some space and try again; the "
                         "index was not changed.")
        self.root = root


#: Errors of a full disk or an exhausted quota.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_NO_SPACE_TEXTS = tuple(os.strerror(number) for number in NO_SPACE_ERRNOS)


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an error that led to it, is a full disk or exhausted quota:
    an ``OSError`` with that errno, or an error whose text carries its message (what
    ``shutil.copytree`` and FAISS raise)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
            return True
        if any(text in str(exc) for text in _NO_SPACE_TEXTS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class BackendError(CrampQAError):
    """The search backend (Milvus) is not installed, not reachable or failed."""

    exit_code = 8
    http_status = 503
    code = "backend_error"


class ModelError(CrampQAError):
    """The embedding model cannot be loaded from the local installation."""

    exit_code = 6
    http_status = 500
    code = "model_error"


class EvalError(CrampQAError):
    """A question set, qrels file or BEIR folder is missing or malformed."""

    exit_code = 7
    http_status = 422
    code = "eval_error"


class InternalError(CrampQAError):
    """Anything unexpected (a bug, the disk filling up): reported in one line, no traceback.

    ``CRAMPQA_DEBUG=1`` makes the CLI show the traceback instead.
    """

    exit_code = 1
    http_status = 500
    code = "internal_error"


class RequestTooLarge(CrampQAError):
    """A web request body is larger than the service accepts."""

    http_status = 413
    code = "too_large"


class BadHost(CrampQAError):
    """A web request named a host the service does not answer for (DNS rebinding guard)."""

    http_status = 400
    code = "bad_host"


def unexpected(exc: BaseException) -> CrampQAError:
    """The one-line error for an exception crampqa did not anticipate."""
    if isinstance(exc, CrampQAError):
        return exc
    if isinstance(exc, MemoryError):
        return InternalError("Out of memory; close other programs or use a smaller corpus.")
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return InternalError(f"System error: {exc.strerror}{where}; check the disk and the "
                             "folder permissions, then try again.")
    detail = " ".join(str(exc).split())[:300]
    return InternalError(f"Unexpected {type(exc).__name__}" + (f": {detail}" if detail else "")
                         + "; please report it (CRAMPQA_DEBUG=1 shows the traceback).")


# A readable alias: `from crampqa.errors import IndexStoreError`.
IndexStoreError = IndexError_
