"""Shared fixtures: fake embedders for fast unit tests, and a real index built once."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from crampqa import CrampQA
from crampqa.config import MODEL_NAME, PROJECT_ROOT
from crampqa.embedding import EMBEDDERS, ModelIdentity

if TYPE_CHECKING:
    from tests.support import Crampqa

CORPUS = PROJECT_ROOT / "corpus"
FAKE_MODEL = "fake-hash-embedder"


class FakeEmbedder:
    """Hashed bag of words: deterministic, instant, NOT evidence that retrieval works."""

    name = FAKE_MODEL
    dim = 64

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int(hashlib.md5(word.encode()).hexdigest()[:8], 16)
                out[i, h % self.dim] += 1.0
            out[i, 0] += 1e-3
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out

    def identity(self, known: ModelIdentity | None = None) -> ModelIdentity:
        """Its name, and a stand-in for a weights hash (it has no weights)."""
        return ModelIdentity(self.name, hashlib.sha256(f"fake {self.name}".encode()).hexdigest())


class FakeDefaultEmbedder(FakeEmbedder):
    """The fake embedder standing in for the default model (same name, fake weights),
    remembering every text it was asked to embed."""

    name = MODEL_NAME
    seen: list[str] = []  # noqa: RUF012 - shared on purpose: the CLI makes its own instance

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        FakeDefaultEmbedder.seen.extend(texts)
        return super().encode(texts, batch_size)


EMBEDDERS[FAKE_MODEL] = FakeEmbedder


# ---- integration tests that CI must run ----------------------------------------------------

#: Markers of the tests that need something outside Python (Chromium, a Ray head, a Milvus
#: server, the shared data sets). Locally they skip with their reason; in CI a skip of one
#: of them is a failure, so that a missing piece cannot pass unnoticed.
REQUIRED_IN_CI = ("browser", "ray", "milvus", "shared_data")


def must_run(item: pytest.Item) -> list[str]:
    """The markers of :data:`REQUIRED_IN_CI` on ``item`` that forbid skipping it: all of
    them in CI (``CI=true``, which .ci/run sets), ``shared_data`` also with
    ``CRAMPQA_REQUIRE_SHARED_DATA=1``; none locally."""
    in_ci = os.environ.get("CI", "").strip().lower() in ("true", "1")
    shared = os.environ.get("CRAMPQA_REQUIRE_SHARED_DATA") == "1"
    return [m for m in REQUIRED_IN_CI if item.get_closest_marker(m) is not None
            and (in_ci or (shared and m == "shared_data"))]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Turn the skip of a test that CI must run into a failure that gives the reason."""
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    markers = must_run(item)
    if not markers:
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    report.outcome = "failed"
    report.longrepr = (f"a test marked {', '.join(markers)} must run in CI, but it was "
                       f"skipped: {reason}")


#: How the browser tests start Chromium: headless, no network beyond the test server.
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def find_chromium() -> Path | None:
    """Chromium where the system has it: ``chromium`` or ``chromium-browser`` on the PATH,
    or Debian's /usr/bin/chromium (None: not installed)."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return Path(found)
    for path in (Path("/usr/bin/chromium"), Path("/usr/bin/chromium-browser"),
                 Path("/snap/bin/chromium")):
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


def chromium_or_skip() -> Path:
    """The Chromium executable, or a skip saying how to install it (a failure in CI)."""
    found = find_chromium()
    if found is None:
        pytest.skip("Chromium is missing: no chromium or chromium-browser on the PATH nor "
                    "/usr/bin/chromium (install Debian's chromium package)")
    return found


@pytest.fixture(scope="session", autouse=True)
def encoder_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Builds keep their ONNX export cache in the test session's temporary folder, not in
    the user's cache folder."""
    from crampqa.encoder_cache import CACHE_ENV

    saved = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("encoder-cache"))
    yield
    if saved is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = saved


@pytest.fixture
def fake_default_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default model name maps to :class:`FakeDefaultEmbedder` (nothing loads the real
    model), its record of embedded texts starts empty, and no CRAMPQA_* variable leaks in."""
    # test modules import this file as tests.conftest and pytest as conftest: register
    # the class the tests see, so that `FakeDefaultEmbedder.seen` is one list
    from tests.conftest import FakeDefaultEmbedder as embedder

    embedder.seen = []
    monkeypatch.setitem(EMBEDDERS, MODEL_NAME, embedder)
    for name in ("CRAMPQA_CORPUS", "CRAMPQA_INDEX", "CRAMPQA_DEBUG", "CRAMPQA_MAX_FILE_MB"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake_settings():
    from crampqa.config import IndexSettings

    return IndexSettings(model=FAKE_MODEL)


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    """A writable copy of the real corpus."""
    target = tmp_path / "corpus"
    shutil.copytree(CORPUS, target)
    return target


@pytest.fixture
def fake_qa(corpus_copy: Path, tmp_path: Path, fake_settings) -> CrampQA:
    """The real corpus indexed with the fake embedder (fast)."""
    return CrampQA.open(corpus_copy, tmp_path / "index", settings=fake_settings,
                        embedder=FakeEmbedder())


@pytest.fixture(scope="session")
def real_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The real corpus indexed once per session with the real model."""
    root = tmp_path_factory.mktemp("real") / "index"
    CrampQA.build(CORPUS, root)
    yield root


@pytest.fixture(scope="session")
def real_qa(real_index: Path) -> CrampQA:
    """An engine over the real index (ONNX query encoder, as users get it)."""
    return CrampQA.open(CORPUS, real_index, auto_build=False)


def run_main(*args: str | Path) -> tuple[int, str, str]:
    """Run ``crampqa ARGS`` in this process: (exit code, stdout, stderr)."""
    from crampqa.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


# ---- an index of the real corpus built with the fake embedder, free to damage ----------


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The real corpus (a copy) and its index, built once with the fake embedder."""
    root = tmp_path_factory.mktemp("fake-index")
    corpus = root / "corpus"
    shutil.copytree(CORPUS, corpus)
    CrampQA.build(corpus, root / "index", embedder=FakeDefaultEmbedder())
    return corpus, root / "index"


@pytest.fixture
def corpus(base: tuple[Path, Path]) -> Path:
    """The corpus of ``base`` (do not modify: use ``corpus_copy`` for that)."""
    return base[0]


@pytest.fixture
def index(base: tuple[Path, Path], tmp_path: Path) -> Path:
    """A private copy of the base index, free to damage."""
    target = tmp_path / "index"
    shutil.copytree(base[1], target, symlinks=True)
    return target


@pytest.fixture(scope="module")
def module_qa(base: tuple[Path, Path]) -> CrampQA:
    return CrampQA.open(base[0], base[1], auto_build=False, embedder=FakeDefaultEmbedder())


@pytest.fixture
def sub(tmp_path: Path) -> Iterator[Crampqa]:
    """``crampqa`` in a subprocess, with the fake embedder and an optional gate."""
    from tests.support import Crampqa  # imported here: tests.support imports this file

    helper = Crampqa(tmp_path)
    yield helper
    helper.release()  # never leave a gated process waiting
