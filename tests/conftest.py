"""Shared fixtures: fake embedders for fast unit tests, and a real index built once."""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from crampqa import CrampQA
from crampqa.config import MODEL_NAME, PROJECT_ROOT
from crampqa.embedding import EMBEDDERS, ModelIdentity

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


@pytest.fixture
def fake_default_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default model name maps to :class:`FakeDefaultEmbedder` (nothing loads the real
    model), its record of embedded texts starts empty, and no CRAMPQA_* variable leaks in."""
    # test modules import this file as tests.conftest and pytest as conftest: register
    # the class the tests see, so that `FakeDefaultEmbedder.seen` is one list
    from tests.conftest import FakeDefaultEmbedder as embedder

    embedder.seen = []
    monkeypatch.setitem(EMBEDDERS, MODEL_NAME, embedder)
    for name in ("CRAMPQA_CORPUS", "CRAMPQA_INDEX", "CRAMPQA_DEBUG"):
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
